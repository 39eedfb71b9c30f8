package main

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const out15 = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 50
number of threads: 2
maximum number of tries: 1
duration: 8 s
number of transactions actually processed: 184592
number of failed transactions: 0 (0.000%)
latency average = 2.167 ms
initial connection time = 57.123 ms
tps = 23074.123456 (without initial connection time)
`

const outReconnect = `number of failed transactions: 3 (0.1%)
latency average = 231.699 ms
average connection time = 4.1 ms
tps = 216.5 (including reconnection times)
`

// pgbench 13 and older print both lines; the excluding one is wanted.
const out13 = `latency average = 1.000 ms
tps = 900.5 (including connections establishing)
tps = 1000.25 (excluding connections establishing)
`

func TestParsePgbench(t *testing.T) {
	r, err := parsePgbench(out15)
	require.NoError(t, err)
	require.Equal(t, pgbenchResult{TPS: 23074.123456, LatencyMs: 2.167, Processed: 184592}, r)

	r, err = parsePgbench(outReconnect)
	require.NoError(t, err)
	require.Equal(t, pgbenchResult{TPS: 216.5, LatencyMs: 231.699, Failed: 3}, r)

	r, err = parsePgbench(out13)
	require.NoError(t, err)
	require.Equal(t, 1000.25, r.TPS)

	// Under -t the count is "done/planned".
	r, err = parsePgbench("number of transactions actually processed: 990/1000\ntps = 5.0 (without initial connection time)\n")
	require.NoError(t, err)
	require.Equal(t, int64(990), r.Processed)

	_, err = parsePgbench("number of transactions actually processed: 0\n")
	require.ErrorContains(t, err, "no tps line")
}

func TestLogLatenciesAndPercentile(t *testing.T) {
	log := "0 1 1500 0 1700000000 1\n1 1 skipped 0 1700000000 2\nshort\n2 7 300 0 1700000000 3\n0 2 -5 0 1 1\n"
	lat, err := appendLogLatencies(nil, strings.NewReader(log))
	require.NoError(t, err)
	require.Equal(t, []float64{1.5, 0.3}, lat)

	xs := make([]float64, 0, 100)
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	p, err := percentile(xs, 0.99)
	require.NoError(t, err)
	require.Equal(t, 99.0, p)
	_, err = percentile(nil, 0.99)
	require.Error(t, err)
}

func TestMedianAndRatios(t *testing.T) {
	require.True(t, math.IsNaN(median(nil)))
	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, median([]float64{4, 1, 2, 3}))

	res := newResults()
	for round, pair := range [][2]float64{{100, 200}, {150, 100}, {90, 100}} {
		res.add("1", vSlcS, round, sample{TPS: pair[0]})
		res.add("1", vPgbS, round, sample{TPS: pair[1]})
	}
	res.add("1", vSlcS, 3, sample{Err: "boom"})
	tps := func(x sample) float64 { return x.TPS }
	// Per-round ratios 0.5, 1.5, 0.9: the median is 0.9, not 340/400.
	require.InDelta(t, 0.9, res.ratio("1", vSlcS.Key(), vPgbS.Key(), tps), 1e-9)
	require.Equal(t, []float64{100, 150, 90}, res.values("1", vSlcS.Key(), tps))
	require.Equal(t, "boom", res.firstErr("1", vSlcS.Key()))
}

func TestFormatting(t *testing.T) {
	require.Equal(t, "1,234,567.9", fmtNum(1234567.89, 1))
	require.Equal(t, "−12", fmtNum(-12, 0))
	require.Equal(t, "0", fmtNum(-0.1, 0))
	require.Equal(t, "–", fmtNum(math.NaN(), 0))
	require.Equal(t, `pgbench -S '--log-prefix=/a b' 'it'\''s'`, shellJoin([]string{"pgbench", "-S", "--log-prefix=/a b", "it's"}))
	require.True(t, selected("1,3", "3b"))
	require.False(t, selected("1,3", "33"))
	require.False(t, selected("1", "2"))
}

func FuzzParsePgbench(f *testing.F) {
	for _, s := range []string{out15, outReconnect, out13, "", "tps = 1e400 (x)\n", "tps = . ()\nlatency average = 9e999 ms\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parsePgbench(s)
		if err == nil && (math.IsNaN(r.TPS) || math.IsInf(r.TPS, 0) || r.TPS < 0) {
			t.Fatalf("bad tps %v from %q", r.TPS, s)
		}
		lat, err := appendLogLatencies(nil, strings.NewReader(s))
		if err == nil && len(lat) > 0 {
			if _, err := percentile(lat, 0.99); err != nil {
				t.Fatal(err)
			}
		}
	})
}
