package main

import (
	"fmt"
	"slices"
	"strings"
)

// report is what a run prints (table) and writes to docs/benchmarks.md (doc).
type report struct {
	table string
	doc   string
}

// cell formats one value of scenario s in its unit.
func cell(s scenario, x float64) string {
	switch {
	case s.Kind == kindCopy:
		return fmtNum(x, 0) + " MB/s"
	case s.Kind == kindIdle:
		return fmtNum(x, 2) + " kB/client"
	case s.ID == "5":
		return fmtNum(x*1000, 1) + " µs"
	}
	return fmtNum(x, 0) + " tps"
}

// resultsTable renders one row per (scenario, variant).
func resultsTable(res *results, list []scenario) string {
	var b strings.Builder
	b.WriteString("| # | Scenario | Target | Median | Rounds (min – max) | vs direct | vs PgBouncer | Pooler CPU / tx | CPU / tx vs PgBouncer |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range list {
		m := metricFor(s)
		for i, v := range s.Variants {
			id, title := "", ""
			if i == 0 {
				id, title = s.ID, s.Title
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", id, title, v.Label(), strings.Join(append(rowCells(res, s, v, m), cpuCells(res, s, v)...), " | "))
		}
	}
	return b.String()
}

// rowCells returns the Median, Rounds, vs direct and vs PgBouncer cells.
func rowCells(res *results, s scenario, v variant, m metric) []string {
	key := v.Key()
	if why := res.na[s.ID][key]; why != "" {
		return []string{why, "–", "–", "–"}
	}
	if _, ran := res.samples[s.ID][key]; !ran {
		return []string{"not run", "–", "–", "–"}
	}
	vals := res.values(s.ID, key, m)
	n := len(res.samples[s.ID][key])
	if len(vals) == 0 {
		return []string{"error: " + escape(res.firstErr(s.ID, key)), "–", "–", "–"}
	}
	med := cell(s, median(vals))
	if s.ID == "5" {
		med = fmtNum(median(vals), 3) + " ms"
	}
	if s.LogLatency {
		med += ", p99 " + fmtNum(median(res.values(s.ID, key, func(x sample) float64 { return x.P99Ms })), 2) + " ms"
	}
	if s.Kind == kindIdle {
		rss := median(res.values(s.ID, key, func(x sample) float64 { return float64(x.RSSKB) }))
		delta := median(res.values(s.ID, key, func(x sample) float64 { return x.KBDeltaPer }))
		med += fmt.Sprintf(" (RSS %s MB; %s kB/client above the RSS before connecting)", fmtNum(rss/1024, 1), fmtNum(delta, 2))
	}
	if len(vals) < n {
		med += fmt.Sprintf(" (%d of %d rounds failed: %s)", n-len(vals), n, escape(res.firstErr(s.ID, key)))
	}
	spread := "–"
	if len(vals) > 1 {
		spread = cell(s, slices.Min(vals)) + " – " + cell(s, slices.Max(vals))
		if s.ID == "5" {
			spread = fmtNum(slices.Min(vals), 3) + " – " + fmtNum(slices.Max(vals), 3) + " ms"
		}
	}
	vsDirect, vsPgb := "–", "–"
	compare := func(other string) string {
		if s.ID == "5" {
			return fmt.Sprintf("%+.1f µs", res.diff(s.ID, key, other, m)*1000)
		}
		r := res.ratio(s.ID, key, other, m)
		return fmtNum(r, 2) + "x"
	}
	if v.Target != direct && s.Kind != kindIdle && len(res.values(s.ID, direct, m)) > 0 {
		vsDirect = compare(direct)
	}
	pgb := variant{Target: pgbouncer, Mode: v.Mode}.Key()
	if v.Target == sluice && len(res.values(s.ID, pgb, m)) > 0 {
		vsPgb = compare(pgb)
	}
	return []string{med, spread, vsDirect, vsPgb}
}

// targetsTable renders the verdicts.
func targetsTable(vs []verdict) string {
	var b strings.Builder
	b.WriteString("| # | Target | Measured (median of per-round values) | Met? |\n| --- | --- | --- | --- |\n")
	for _, v := range vs {
		status := map[string]string{"met": "yes", "missed": "**no**", "n/a": "n/a"}[v.Status]
		measured := v.Measured
		if v.Status == "n/a" {
			measured = v.Why
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", v.Scenario, v.Goal, escape(measured), status)
	}
	return b.String()
}

// escape keeps a table cell on one row.
func escape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// render builds the stdout table and the full document.
func render(cfg *config, e *env, info *runInfo, res *results) report {
	var list []scenario
	for _, s := range scenarios(cfg.idleClients) {
		if selected(cfg.only, s.ID) {
			list = append(list, s)
		}
	}
	table := resultsTable(res, list) + "\n" + targetsTable(append(checkTargets(res, e), cpuVerdicts(res, list)...))
	var d strings.Builder
	d.WriteString(docIntro)
	d.WriteString("\n## Latest run\n\n")
	d.WriteString(info.markdown(cfg))
	d.WriteString("\n### Results\n\n")
	d.WriteString(table)
	d.WriteString("\n" + notesBegin + "\n" + info.notes + "\n" + notesEnd + "\n")
	d.WriteString("\n## Exact commands of this run\n\n")
	fmt.Fprintf(&d, "PostgreSQL listened on 127.0.0.1:%d, PgBouncer on 127.0.0.1:%d, sluice on 127.0.0.1:%d.\n\n", e.cluster.Port, e.pgbPort, e.slcPort)
	for _, s := range list {
		for _, v := range s.Variants {
			if c, ok := res.commands[s.ID][v.Key()]; ok {
				fmt.Fprintf(&d, "- %s, %s: `%s`\n", s.ID, v.Label(), c)
			}
		}
	}
	fmt.Fprintf(&d, "\n<details><summary>pgbouncer.ini</summary>\n\n```ini\n%s```\n\n</details>\n", e.pgbIni)
	fmt.Fprintf(&d, "\n<details><summary>sluice.yaml</summary>\n\n```yaml\n%s```\n\n</details>\n", e.slcYAML)
	d.WriteString("\n## Per-round values\n\n")
	for _, s := range list {
		for _, v := range s.Variants {
			if ss := res.samples[s.ID][v.Key()]; len(ss) > 0 {
				parts := make([]string, len(ss))
				for i, x := range ss {
					parts[i] = x.short(s.Kind)
				}
				fmt.Fprintf(&d, "- %s, %s: %s\n", s.ID, v.Label(), escape(strings.Join(parts, "; ")))
			}
		}
	}
	d.WriteString("\n## Hot-path micro-benchmarks\n\n")
	d.WriteString("`go test -run '^$' -bench . -benchmem ./internal/wire/ ./internal/pool/ ./internal/proxy/`, run by `make bench` after the servers stopped:\n\n")
	if info.micro == "" {
		info.micro = "(skipped: BENCH_MICRO=0)\n"
	}
	fmt.Fprintf(&d, "```text\n%s```\n", info.micro)
	return report{table: table, doc: d.String()}
}

const docIntro = `# Benchmarks

` + "`make bench`" + ` measures sluice against direct PostgreSQL and PgBouncer on this
machine, everything on loopback: a throwaway PostgreSQL with pgbench tables
(scale 10), PgBouncer (installed with ` + "`apt-get install -y pgbouncer`" + ` when
missing) and sluice, with the same pool sizes (session pool 110, transaction
pool 20, per database and user) and SCRAM-SHA-256 logins everywhere (md5 in
scenario 3b). Each scenario runs its targets interleaved round by round
(direct, PgBouncer, sluice, direct, PgBouncer, sluice, ...); the tables give
the median over rounds, the spread, and the median of the per-round ratios
to direct PostgreSQL and to PgBouncer of the same round.

The targets are reported, never asserted. The machine has 2 cores shared by
pgbench, PostgreSQL and the pooler under test (and, while this page was
produced, possibly by other work), so the numbers are noisy: read the
spread column before the medians.

This page is written by ` + "`make bench`" + ` (` + "`bench/run.sh`" + `, which runs
` + "`bench/cmd/benchrun`" + `); only the section between the ` + "`notes`" + ` markers
is hand-written, and it is kept when the page is regenerated. A quick run
for development: ` + "`BENCH_TIME=2 BENCH_ROUNDS=1 BENCH_IDLE_CLIENTS=1000 BENCH_MICRO=0 make bench`" + `
(` + "`BENCH_ONLY=1,5`" + ` picks scenarios; ` + "`BENCH_DOC=`" + ` leaves this page alone).

Scenarios 1 (transaction), 4, 6 and 7 run sluice in ` + "`pool_mode: transaction`" + `.
The failover outage (issue 6) is measured by ` + "`go test ./internal/proxy/hatest`" + `,
not by this script; its numbers are in the notes.

**Pooler CPU per transaction.** For PgBouncer and sluice, the table also
gives the CPU time the pooler process spent per transaction: utime + stime
(fields 14 and 15 of ` + "`/proc/PID/stat`" + `, summed by the kernel over all
the process's threads) read just before pgbench starts and just after it
exits, divided by pgbench's "number of transactions actually processed".
The unit is a clock tick, 1/CLK_TCK s (from ` + "`getconf CLK_TCK`" + `, shown
above the results; 10 ms at the usual 100), so only whole pgbench runs are
measured: the result is at most one tick off per run, and the per-round
values give the ticks and transactions of every run so the resolution can
be read off. A run includes pgbench's logins (the 1,000 SCRAM logins of
scenario 6, a login per transaction in 3a and 3b) and whatever the pooler
does in the background; the pooler closing pgbench's connections after it
exited is partly not counted. Scenario 8 is one COPY (and its login) per
round; scenario 7 has no transactions. Direct PostgreSQL gets no figure: it
has no pooler, and its backends' CPU is PostgreSQL's own work, which is done
behind the poolers too. The ratio column is the median of the per-round
sluice/PgBouncer ratios in the same pool mode. Why it matters: PgBouncer is
single-threaded, so its ceiling is one core divided by its CPU per
transaction; sluice spreads over cores, so on a large machine its CPU per
transaction decides who wins. The "CPU/tx" target rows check sluice <=
PgBouncer in every scenario that runs both in transaction mode (n/a where
PgBouncer cannot run it, as with -M prepared in scenario 4).
`
