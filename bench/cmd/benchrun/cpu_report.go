package main

import (
	"fmt"
	"math"
)

// String is the per-round form of a CPU measurement, e.g. "pooler CPU
// 61.7 µs/tx (412 ticks over 66,789 tx)"; the ticks show how coarse it is.
func (c *cpuUse) String() string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("pooler CPU %s µs/tx (%d ticks over %s tx)", fmtUs(c.UsPerTx), c.Ticks, fmtNum(float64(c.Tx), 0))
}

// fmtUs renders µs with one decimal below 1,000 (pgbench transactions) and
// none above (scenario 8's one COPY).
func fmtUs(us float64) string {
	if us >= 1000 {
		return fmtNum(us, 0)
	}
	return fmtNum(us, 1)
}

// cpuValues is the pooler CPU per transaction of every successful round of
// a variant that has one.
func (r *results) cpuValues(id, key string) []float64 {
	var out []float64
	for _, s := range r.samples[id][key] {
		if s.Err == "" && s.CPU != nil {
			out = append(out, s.CPU.UsPerTx)
		}
	}
	return out
}

// cpuRatio is the median over rounds of a's CPU per transaction divided by
// b's in the same round, over rounds where both were measured; NaN if none.
func (r *results) cpuRatio(id, a, b string) float64 {
	sa, sb := r.samples[id][a], r.samples[id][b]
	var xs []float64
	for i := range min(len(sa), len(sb)) {
		x, y := sa[i], sb[i]
		if x.Err == "" && y.Err == "" && x.CPU != nil && y.CPU != nil && y.CPU.UsPerTx > 0 {
			xs = append(xs, x.CPU.UsPerTx/y.CPU.UsPerTx)
		}
	}
	return median(xs)
}

// cpuCells are a row's "Pooler CPU / tx" (median, and the range when there
// are several rounds) and "CPU / tx vs PgBouncer" (sluice rows: median of
// the per-round sluice/PgBouncer ratios in the same pool mode) cells.
func cpuCells(res *results, s scenario, v variant) []string {
	cells := []string{"–", "–"}
	key := v.Key()
	vals := res.cpuValues(s.ID, key)
	if v.Target == direct || res.na[s.ID][key] != "" || len(vals) == 0 {
		return cells
	}
	cells[0] = fmtUs(median(vals)) + " µs"
	if len(vals) > 1 {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range vals {
			lo, hi = min(lo, x), max(hi, x)
		}
		cells[0] += " (" + fmtUs(lo) + " – " + fmtUs(hi) + ")"
	}
	if v.Target == sluice {
		if r := res.cpuRatio(s.ID, key, variant{Target: pgbouncer, Mode: v.Mode}.Key()); !math.IsNaN(r) {
			cells[1] = fmtNum(r, 2) + "x"
		}
	}
	return cells
}

// cpuVerdicts checks the CPU target in every listed scenario that
// runs both poolers in transaction mode: sluice's pooler CPU per
// transaction <= PgBouncer's (median of the per-round ratios).
func cpuVerdicts(res *results, list []scenario) []verdict {
	sT, pT := vSlcT.Key(), vPgbT.Key()
	var out []verdict
	for _, s := range list {
		if s.Kind == kindIdle || !hasVariant(s, vSlcT) || !hasVariant(s, vPgbT) {
			continue
		}
		v := verdict{Scenario: s.ID, Goal: "transaction: sluice CPU/tx <= PgBouncer's (same round)"}
		slc, pgb := res.cpuValues(s.ID, sT), res.cpuValues(s.ID, pT)
		r := res.cpuRatio(s.ID, sT, pT)
		switch {
		case firstNonEmpty(res.na[s.ID][sT], res.na[s.ID][pT]) != "":
			v.Status, v.Why = "n/a", firstNonEmpty(res.na[s.ID][sT], res.na[s.ID][pT])
		case len(pgb) == 0:
			// e.g. scenario 4: PgBouncer 1.18 cannot run -M prepared in
			// transaction mode; nothing to compare with is not a miss.
			v.Status, v.Why = "n/a", "PgBouncer not measured: "+firstNonEmpty(res.firstErr(s.ID, pT), "no CPU reading")
		default:
			judge(&v, r, 1.0, false, "%.2fx", firstNonEmpty(res.firstErr(s.ID, sT), "no CPU reading"))
			if !math.IsNaN(r) {
				v.Measured += fmt.Sprintf(" (%s µs against %s µs)", fmtUs(median(slc)), fmtUs(median(pgb)))
			}
		}
		out = append(out, v)
	}
	return out
}

func hasVariant(s scenario, v variant) bool {
	for _, x := range s.Variants {
		if x == v {
			return true
		}
	}
	return false
}
