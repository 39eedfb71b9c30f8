package main

import (
	"fmt"
	"math"
	"strings"
)

// results holds every sample by scenario ID and variant key, indexed by
// round (a missing round is a zero sample with Err set).
type results struct {
	samples  map[string]map[string][]sample
	na       map[string]map[string]string
	commands map[string]map[string]string
}

func newResults() *results {
	return &results{
		samples:  map[string]map[string][]sample{},
		na:       map[string]map[string]string{},
		commands: map[string]map[string]string{},
	}
}

func sub[T any](m map[string]map[string]T, id string) map[string]T {
	if m[id] == nil {
		m[id] = map[string]T{}
	}
	return m[id]
}

func (r *results) add(id string, v variant, round int, s sample) {
	m := sub(r.samples, id)
	for len(m[v.Key()]) <= round {
		m[v.Key()] = append(m[v.Key()], sample{Err: "not run"})
	}
	m[v.Key()][round] = s
}

func (r *results) setNA(id string, v variant, why string) { sub(r.na, id)[v.Key()] = why }

func (r *results) command(id string, v variant, cmd string) {
	if _, ok := sub(r.commands, id)[v.Key()]; !ok {
		r.commands[id][v.Key()] = cmd
	}
}

// metric picks a scenario's headline number from a sample.
type metric func(sample) float64

func metricFor(s scenario) metric {
	switch {
	case s.Kind == kindCopy:
		return func(x sample) float64 { return x.MBps }
	case s.Kind == kindIdle:
		return func(x sample) float64 { return x.KBPerConn }
	case s.ID == "5":
		return func(x sample) float64 { return x.LatencyMs }
	}
	return func(x sample) float64 { return x.TPS }
}

// values returns the metric of every successful round of a variant.
func (r *results) values(id, key string, m metric) []float64 {
	var out []float64
	for _, s := range r.samples[id][key] {
		if s.Err == "" {
			out = append(out, m(s))
		}
	}
	return out
}

// ratio is the median over rounds of a[round]/b[round], using only rounds
// where both succeeded; NaN if there are none. diff does the same for a-b.
func (r *results) ratio(id, a, b string, m metric) float64 {
	return r.paired(id, a, id, b, m, func(x, y float64) float64 { return x / y })
}

func (r *results) diff(id, a, b string, m metric) float64 {
	return r.paired(id, a, id, b, m, func(x, y float64) float64 { return x - y })
}

func (r *results) paired(idA, a, idB, b string, m metric, f func(x, y float64) float64) float64 {
	sa, sb := r.samples[idA][a], r.samples[idB][b]
	var xs []float64
	for i := range min(len(sa), len(sb)) {
		if sa[i].Err == "" && sb[i].Err == "" && m(sb[i]) != 0 {
			xs = append(xs, f(m(sa[i]), m(sb[i])))
		}
	}
	return median(xs)
}

// firstErr is the first failed round's error of a variant, or "".
func (r *results) firstErr(id, key string) string {
	for _, s := range r.samples[id][key] {
		if s.Err != "" {
			return s.Err
		}
	}
	return ""
}

// short is a one-line progress summary of a sample, with the pooler's CPU
// time when it was measured.
func (s sample) short(kind string) string {
	out := s.shortMetric(kind)
	if s.Err == "" && s.CPU != nil {
		out += ", " + s.CPU.String()
	}
	return out
}

func (s sample) shortMetric(kind string) string {
	if s.Err != "" {
		return "ERROR " + s.Err
	}
	switch kind {
	case kindCopy:
		return fmt.Sprintf("%.0f MB/s", s.MBps)
	case kindIdle:
		return fmt.Sprintf("%.2f kB/client (RSS %d kB, +%.2f kB/client)", s.KBPerConn, s.RSSKB, s.KBDeltaPer)
	}
	out := fmt.Sprintf("%.0f tps, latency %.3f ms", s.TPS, s.LatencyMs)
	if s.P99Ms > 0 {
		out += fmt.Sprintf(", p99 %.2f ms", s.P99Ms)
	}
	return out
}

func selected(only, id string) bool {
	if only == "" {
		return true
	}
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		if s == id || (s != "" && strings.HasPrefix(id, s) && len(id) == len(s)+1 && id[len(s)] >= 'a' && id[len(s)] <= 'z') {
			return true // "3" selects 3a and 3b
		}
	}
	return false
}

// shellJoin quotes args for a copy-pasteable command line.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$*?()<>|;&\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// fmtNum renders a number with thousands separators and the given decimals.
func fmtNum(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := fmt.Sprintf("%.*f", decimals, math.Abs(v))
	intPart, frac := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i:]
	}
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	sign := ""
	if v < 0 && s != fmt.Sprintf("%.*f", decimals, 0.0) {
		sign = "−"
	}
	return sign + b.String() + frac
}
