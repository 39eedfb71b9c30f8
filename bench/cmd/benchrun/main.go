// Command benchrun is `make bench`: it starts a throwaway PostgreSQL
// (pgbench tables), PgBouncer and sluice on loopback, runs every scenario
// of the benchmark suite against direct PostgreSQL, PgBouncer and sluice
// interleaved round by round (A B C A B C ...), and prints a Markdown report
// to stdout and to docs/benchmarks.md.
//
// Processes: PgBouncer and sluice are our children (killed by Pdeathsig if
// we die); PostgreSQL is daemonised by pg_ctl, so bench/run.sh also stops
// any cluster left under -dir on exit. Everything is stopped on return,
// SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// config is benchrun's flags.
type config struct {
	seconds     int    // pgbench -T per run
	rounds      int    // rounds per scenario
	scale       int    // pgbench -s
	idleClients int    // scenario 7
	copyRows    int    // scenario 8: rows of 1,000 bytes
	workDir     string // scratch dir reachable by the postgres OS user
	sluiceBin   string
	idleBin     string
	doc         string // Markdown output file; "" = stdout only
	only        string // comma-separated scenario IDs; "" = all
	micro       bool   // run the Go micro-benchmarks for the report
	sluiceTx    string // auto | off
	command     string // how we were invoked, for the report
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func parseFlags() *config {
	c := &config{}
	flag.IntVar(&c.seconds, "time", envInt("BENCH_TIME", 8), "seconds per pgbench run (BENCH_TIME)")
	flag.IntVar(&c.rounds, "rounds", envInt("BENCH_ROUNDS", 3), "rounds per scenario (BENCH_ROUNDS)")
	flag.IntVar(&c.scale, "scale", envInt("BENCH_SCALE", 10), "pgbench scale factor (BENCH_SCALE)")
	flag.IntVar(&c.idleClients, "idle-clients", envInt("BENCH_IDLE_CLIENTS", 10000), "idle clients in scenario 7 (BENCH_IDLE_CLIENTS)")
	flag.IntVar(&c.copyRows, "copy-rows", envInt("BENCH_COPY_ROWS", 1000000), "rows of 1,000 bytes in scenario 8 (BENCH_COPY_ROWS)")
	flag.StringVar(&c.workDir, "dir", os.TempDir(), "scratch directory (must be reachable by the postgres OS user)")
	flag.StringVar(&c.sluiceBin, "sluice", "bin/sluice", "sluice binary")
	flag.StringVar(&c.idleBin, "idleclients", "", "bench/cmd/idleclients binary")
	flag.StringVar(&c.doc, "doc", "docs/benchmarks.md", "Markdown file to (re)write; \"\" writes stdout only")
	flag.StringVar(&c.only, "only", os.Getenv("BENCH_ONLY"), "comma-separated scenario IDs to run, e.g. 1,5 (BENCH_ONLY)")
	flag.BoolVar(&c.micro, "micro", os.Getenv("BENCH_MICRO") != "0", "also run the Go micro-benchmarks (BENCH_MICRO=0 skips)")
	flag.StringVar(&c.sluiceTx, "sluice-tx", "auto", "auto: measure sluice in transaction mode if it accepts pool_mode: transaction; off: never")
	flag.StringVar(&c.command, "command", "make bench", "command line recorded in the report")
	flag.Parse()
	return c
}

func main() {
	cfg := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, cfg *config) error {
	began := time.Now()
	info := collectInfo(ctx, cfg)
	e := &env{cfg: cfg, clk: clockTicks(ctx)}
	info.clkTck = e.clk.note
	defer e.stop()
	logf("starting PostgreSQL and loading pgbench tables (scale %d)", cfg.scale)
	var err error
	if e.cluster, err = startCluster(ctx, cfg); err != nil {
		return err
	}
	info.postgres = e.cluster.BinDir
	logf("starting PgBouncer")
	if err := startPgbouncer(ctx, e); err != nil {
		return err
	}
	logf("starting sluice")
	if err := startSluice(ctx, e); err != nil {
		return err
	}
	if !e.sluiceTx {
		logf("sluice transaction mode: %s", e.sluiceTxWhy)
	}
	res := newResults()
	for _, s := range scenarios(cfg.idleClients) {
		if !selected(cfg.only, s.ID) {
			continue
		}
		runScenario(ctx, e, res, s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	info.loadEnd = loadAvg()
	e.stop()
	if cfg.micro {
		logf("running Go micro-benchmarks")
		info.micro = runMicro(ctx)
	}
	info.elapsed = time.Since(began)
	rep := render(cfg, e, info, res)
	fmt.Print(rep.table)
	if cfg.doc != "" {
		if err := writeDoc(cfg.doc, rep.doc); err != nil {
			return err
		}
		logf("wrote %s", cfg.doc)
	}
	return nil
}

// runScenario measures every variant of s, round by round.
func runScenario(ctx context.Context, e *env, res *results, s scenario) {
	rounds := e.cfg.rounds
	if s.Once {
		rounds = 1
	}
	for r := range rounds {
		for _, v := range s.Variants {
			if ctx.Err() != nil {
				return
			}
			if why := e.notApplicable(s, v); why != "" {
				res.setNA(s.ID, v, why)
				continue
			}
			res.command(s.ID, v, e.describe(s, v))
			t := time.Now()
			var sm sample
			switch s.Kind {
			case kindPgbench:
				sm = e.runPgbench(ctx, s, v)
			case kindCopy:
				sm = e.runCopy(ctx, s, v)
			case kindIdle:
				sm = e.runIdle(ctx, s, v)
			}
			res.add(s.ID, v, r, sm)
			logf("scenario %s round %d/%d %-22s %s (%.0fs)", s.ID, r+1, rounds, v.Key(), sm.short(s.Kind), time.Since(t).Seconds())
		}
	}
}

// notApplicable says why a variant is not measured, or "".
func (e *env) notApplicable(s scenario, v variant) string {
	switch {
	case v.Target == direct && s.DirectNA != "":
		return s.DirectNA
	case v.Target == sluice && v.Mode == transaction && !e.sluiceTx:
		return e.sluiceTxWhy
	}
	return ""
}

// describe is the exact command (or query) a variant runs, for the report.
func (e *env) describe(s scenario, v variant) string {
	pw := "PGPASSWORD=" + passwords[s.User] + " "
	switch s.Kind {
	case kindPgbench:
		return pw + shellJoin(append([]string{"pgbench"}, e.pgbenchArgs(s, v, e.cfg.workDir+"/pgbench_log_"+s.ID)...))
	case kindCopy:
		return fmt.Sprintf("pgconn CopyTo(io.Discard) %q on %q", e.copySQL(), e.dsn(v.Target, v.Mode, s.User))
	default:
		return fmt.Sprintf("idleclients -dsn %q -n %d -pid <%s pid>", e.dsn(v.Target, v.Mode, s.User), e.cfg.idleClients, v.Target)
	}
}
