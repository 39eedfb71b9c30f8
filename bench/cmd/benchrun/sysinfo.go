package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// runInfo is the context of a run that the report records.
type runInfo struct {
	date, cpu, mem, kernel, load string
	loadEnd                      string // load average when the measurements ended
	sluiceVersion, gitDescribe   string
	postgres                     string // server bin dir, filled in once the cluster runs
	clkTck                       string // CLK_TCK, the unit of the pooler CPU times, and its source
	elapsed                      time.Duration
	micro                        string // micro-benchmark output
	notes                        string // hand-written section kept from the previous doc
}

const (
	notesBegin = "<!-- notes:begin (hand-written; kept by make bench) -->"
	notesEnd   = "<!-- notes:end -->"
)

const defaultNotes = `## Notes on the targets

(Hand-written explanations of missed targets go here.)
`

func collectInfo(ctx context.Context, cfg *config) *runInfo {
	i := &runInfo{date: time.Now().UTC().Format("2006-01-02 15:04 MST"), notes: defaultNotes}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				i.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		i.mem = strings.Join(strings.Fields(firstLine(string(b)))[1:], " ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		i.kernel = strings.TrimSpace(string(b))
	}
	i.load = loadAvg()
	i.sluiceVersion = cmdOut(ctx, cfg.sluiceBin, "version")
	i.gitDescribe = cmdOut(ctx, "git", "describe", "--tags", "--always", "--dirty")
	if b, err := os.ReadFile(cfg.doc); err == nil && cfg.doc != "" {
		s := string(b)
		if a := strings.Index(s, notesBegin); a >= 0 {
			if z := strings.Index(s[a:], notesEnd); z >= 0 {
				i.notes = strings.Trim(s[a+len(notesBegin):a+z], "\n")
			}
		}
	}
	return i
}

// cmdOut runs a command and returns its first output line, or "unknown".
func cmdOut(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "unknown (" + firstLine(err.Error()) + ")"
	}
	return firstLine(string(out))
}

func (i *runInfo) markdown(cfg *config) string {
	var b strings.Builder
	pgbench := filepath.Join(i.postgres, "pgbench")
	if _, err := os.Stat(pgbench); err != nil {
		pgbench = "pgbench"
	}
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, escape(v)) }
	b.WriteString("| | |\n| --- | --- |\n")
	row("Date", i.date)
	row("Command", fmt.Sprintf("`%s` (BENCH_TIME=%d s per pgbench run, BENCH_ROUNDS=%d, scale %d, %d idle clients, %d COPY rows); took %s",
		cfg.command, cfg.seconds, cfg.rounds, cfg.scale, cfg.idleClients, cfg.copyRows, i.elapsed.Round(time.Second)))
	row("Machine", fmt.Sprintf("%d CPUs (nproc), %s, %s RAM, Linux %s", runtime.NumCPU(), i.cpu, i.mem, i.kernel))
	row("Load average (1, 5, 15 min)", fmt.Sprintf("%s at start, %s at the end of the measurements", i.load, i.loadEnd))
	row("sluice", fmt.Sprintf("%s (git describe: %s), %s", i.sluiceVersion, i.gitDescribe, runtime.Version()))
	row("PostgreSQL", cmdOut(context.Background(), filepath.Join(i.postgres, "postgres"), "--version"))
	row("PgBouncer", cmdOut(context.Background(), "pgbouncer", "--version"))
	row("pgbench", cmdOut(context.Background(), pgbench, "--version"))
	row("Clock ticks per second (pooler CPU)", i.clkTck)
	return b.String()
}

// runMicro runs the hot-path micro-benchmarks and returns their output.
func runMicro(ctx context.Context) string {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "./internal/wire/", "./internal/pool/", "./internal/proxy/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out) + "\n(go test failed: " + err.Error() + ")\n"
	}
	return string(out)
}

// writeDoc writes the document atomically.
func writeDoc(path, doc string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadAvg is the 1, 5 and 15 minute load average from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
