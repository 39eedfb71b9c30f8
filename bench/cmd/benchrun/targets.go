package main

import (
	"fmt"
	"math"
)

// verdict is one target of the issue, checked against this run. Targets are
// reported, never asserted: a missed target does not fail `make bench`.
type verdict struct {
	Scenario string
	Goal     string
	Measured string
	Status   string // "met", "missed", "n/a"
	Why      string // for n/a: the reason
}

// checkTargets evaluates the targets on res. e supplies n/a reasons.
func checkTargets(res *results, e *env) []verdict {
	tps := func(x sample) float64 { return x.TPS }
	sS, pS, sT, pT := vSlcS.Key(), vPgbS.Key(), vSlcT.Key(), vPgbT.Key()
	var out []verdict

	ratioGoal := func(id, goal, a, b string, m metric, want float64) {
		v := verdict{Scenario: id, Goal: goal}
		if why := res.na[id][a]; why != "" {
			v.Status, v.Why = "n/a", why
		} else if why := res.na[id][b]; why != "" {
			v.Status, v.Why = "n/a", why
		} else {
			judge(&v, res.ratio(id, a, b, m), want, true, "%.2fx", firstNonEmpty(res.firstErr(id, a), res.firstErr(id, b)))
		}
		out = append(out, v)
	}
	ratioGoal("1", "session: sluice >= 1.0x PgBouncer (same round)", sS, pS, tps, 1.0)
	ratioGoal("1", "session: sluice >= 0.9x direct (aim)", sS, direct, tps, 0.9)
	ratioGoal("1", "transaction: sluice >= 1.1x PgBouncer (same round)", sT, pT, tps, 1.1)
	ratioGoal("2", "sluice >= 1.0x PgBouncer (same round)", sS, pS, tps, 1.0)
	ratioGoal("3a", "SCRAM: sluice >= 2x PgBouncer", sS, pS, tps, 2.0)
	ratioGoal("3b", "md5: sluice >= 1.0x PgBouncer", sS, pS, tps, 1.0)

	// 4: sluice's prepared run against PgBouncer's scenario-1 transaction run.
	v4 := verdict{Scenario: "4", Goal: "works, and sluice >= 1.0x PgBouncer's scenario 1 (transaction)"}
	if why := res.na["4"][sT]; why != "" {
		v4.Status, v4.Why = "n/a", why
	} else {
		r := res.paired("4", sT, "1", pT, tps, func(x, y float64) float64 { return x / y })
		judge(&v4, r, 1.0, true, "%.2fx", firstNonEmpty(res.firstErr("4", sT), res.firstErr("1", pT)))
	}
	out = append(out, v4)

	v5 := verdict{Scenario: "5", Goal: "sluice adds <= 20 µs per query vs direct"}
	lat := func(x sample) float64 { return x.LatencyMs }
	judge(&v5, res.diff("5", sS, direct, lat)*1000, 20, false, "%+.1f µs", firstNonEmpty(res.firstErr("5", sS), res.firstErr("5", direct)))
	out = append(out, v5)
	// Transaction mode: sluice's latency per query no higher than
	// PgBouncer's (both against direct, so the difference of latencies).
	v5t := verdict{Scenario: "5", Goal: "transaction: sluice adds no more latency per query than PgBouncer (transaction)"}
	if why := firstNonEmpty(res.na["5"][sT], res.na["5"][pT]); why != "" {
		v5t.Status, v5t.Why = "n/a", why
	} else {
		judge(&v5t, res.diff("5", sT, pT, lat)*1000, 0, false, "%+.1f µs vs PgBouncer", firstNonEmpty(res.firstErr("5", sT), res.firstErr("5", pT)))
	}
	out = append(out, v5t)

	ratioGoal("6", "transaction: sluice >= 1.3x PgBouncer (same round)", sT, pT, tps, 1.3)
	v6 := verdict{Scenario: "6", Goal: "transaction: sluice p99 below PgBouncer's (same round)"}
	if why := firstNonEmpty(res.na["6"][sT], res.na["6"][pT]); why != "" {
		v6.Status, v6.Why = "n/a", why
	} else {
		judge(&v6, res.ratio("6", sT, pT, func(x sample) float64 { return x.P99Ms }), 1, false, "%.2fx PgBouncer's p99", firstNonEmpty(res.firstErr("6", sT), res.firstErr("6", pT)))
	}
	out = append(out, v6)

	v7 := verdict{Scenario: "7", Goal: "sluice <= 4 kB per idle client"}
	if why := res.na["7"][sT]; why != "" {
		v7.Status, v7.Why = "n/a", why
	} else {
		kb := median(res.values("7", sT, func(x sample) float64 { return x.KBPerConn }))
		judge(&v7, kb, 4, false, "%.2f kB", res.firstErr("7", sT))
	}
	out = append(out, v7)

	ratioGoal("8", "sluice >= 0.9x direct MB/s", sS, direct, func(x sample) float64 { return x.MBps }, 0.9)
	return out
}

// judge fills Measured and Status from value against want; atLeast says
// whether the goal is value >= want (else value <= want).
func judge(v *verdict, value, want float64, atLeast bool, format, errText string) {
	if math.IsNaN(value) {
		v.Status, v.Measured = "missed", "no successful run"
		if errText != "" {
			v.Measured += ": " + errText
		}
		return
	}
	v.Measured = fmt.Sprintf(format, value)
	if (atLeast && value >= want) || (!atLeast && value <= want) {
		v.Status = "met"
	} else {
		v.Status = "missed"
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
