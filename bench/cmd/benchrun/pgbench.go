package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// pgbenchResult is what one pgbench run reports.
type pgbenchResult struct {
	TPS       float64 // "without initial connection time", or "including reconnection times" under -C
	LatencyMs float64 // "latency average"
	Failed    int64   // "number of failed transactions" (0 when absent)
	Processed int64   // "number of transactions actually processed" (0 when absent)
}

var (
	reTPS     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(([^)]*)\)`)
	reLatency = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	reFailed  = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
	// "N" under -T, "N/M" under -t: N is what counts.
	reProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
)

// parsePgbench extracts tps and average latency from pgbench's summary.
// pgbench 14+ prints one tps line: "(without initial connection time)"
// normally, "(including reconnection times)" with -C; older versions print
// both "including connections establishing" and "excluding ...", and then
// the excluding one is taken (for -C both count reconnections).
func parsePgbench(out string) (pgbenchResult, error) {
	var r pgbenchResult
	tps := reTPS.FindAllStringSubmatch(out, -1)
	if len(tps) == 0 {
		return r, errors.New("pgbench printed no tps line")
	}
	pick := tps[0]
	for _, m := range tps {
		if strings.Contains(m[2], "without") || strings.Contains(m[2], "excluding") {
			pick = m
		}
	}
	v, err := strconv.ParseFloat(pick[1], 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return r, fmt.Errorf("bad tps %q", pick[1])
	}
	r.TPS = v
	if m := reLatency.FindStringSubmatch(out); m != nil {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil && !math.IsInf(v, 0) {
			r.LatencyMs = v
		}
	}
	if m := reFailed.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reProcessed.FindStringSubmatch(out); m != nil {
		r.Processed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// p99FromLogs reads pgbench per-transaction logs (-l --log-prefix=prefix;
// files prefix.<pid>[.<thread>]) and returns the 99th percentile latency in
// ms. Field 3 of each line is the transaction's latency in microseconds.
func p99FromLogs(prefix string) (float64, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("no pgbench logs %s.*", prefix)
	}
	var lat []float64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return 0, err
		}
		lat, err = appendLogLatencies(lat, fh)
		fh.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
	}
	return percentile(lat, 0.99)
}

// appendLogLatencies parses pgbench per-transaction log lines
// ("client_id transaction_no time script_no time_epoch time_us ...").
// Skipped and failed transactions (time "skipped"/"failed") are ignored.
func appendLogLatencies(lat []float64, r io.Reader) ([]float64, error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 3 {
			continue
		}
		us, err := strconv.ParseFloat(f[2], 64)
		if err != nil || us < 0 || math.IsInf(us, 0) || math.IsNaN(us) {
			continue
		}
		lat = append(lat, us/1000)
	}
	return lat, s.Err()
}

// percentile returns the q-quantile (nearest rank) of xs, sorting xs.
func percentile(xs []float64, q float64) (float64, error) {
	if len(xs) == 0 {
		return 0, errors.New("no samples")
	}
	slices.Sort(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	i = max(0, min(i, len(xs)-1))
	return xs[i], nil
}

// median of xs (xs is not modified); NaN when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
