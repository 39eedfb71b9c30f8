package dashboard

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuantileInterpolatesLikeHistogramQuantile(t *testing.T) {
	// 100 observations: 50 ≤ 1 ms, 40 in (1, 10] ms, 9 in (10, 100] ms,
	// 1 above 100 ms.
	h := histogram{buckets: []Bucket{{0.001, 50}, {0.01, 90}, {0.1, 99}}, total: 100}
	for _, tc := range []struct {
		q, want float64
	}{
		{0.5, 0.001},               // exactly the first bucket's top
		{0.25, 0.0005},             // first bucket starts at 0
		{0.7, 0.001 + 0.009*20/40}, // inside the second
		{0.95, 0.01 + 0.09*5/9},    // inside the third
		{0.99, 0.1},                // the third's top
		{0.995, 0.1},               // in +Inf: the last finite bound
		{0, 0},                     // rank 0
		{1, 0.1},                   // rank total: in +Inf
		{-1, 0},                    // clamped
		{2, 0.1},                   // clamped
	} {
		got, ok := h.quantile(tc.q)
		require.True(t, ok, "q=%v", tc.q)
		require.InDelta(t, tc.want, got, 1e-12, "q=%v", tc.q)
	}
	for _, empty := range []histogram{{}, {buckets: []Bucket{{1, 0}}}, {total: 3}, {buckets: []Bucket{{1, 1}}, total: math.NaN()}} {
		_, ok := empty.quantile(0.5)
		require.False(t, ok, "%+v", empty)
	}
}

func TestAddDeltaMergesSeriesAndResets(t *testing.T) {
	var h histogram
	// Pool a: 10 more observations, 4 of them ≤ 1 ms.
	h.addDelta(Series{Value: 30, Buckets: []Bucket{{0.001, 14}, {0.01, 30}}},
		&Series{Value: 20, Buckets: []Bucket{{0.001, 10}, {0.01, 20}}})
	// Pool b: reset (its count went down): all 5 count, with a bound
	// pool a does not have.
	h.addDelta(Series{Value: 5, Buckets: []Bucket{{0.0005, 1}, {0.001, 2}, {0.01, 5}}},
		&Series{Value: 50, Buckets: []Bucket{{0.0005, 40}, {0.001, 45}, {0.01, 50}}})
	// Pool c: new in the window.
	h.addDelta(Series{Value: 1, Buckets: []Bucket{{0.001, 0}, {0.01, 1}}}, nil)
	require.Equal(t, 16.0, h.total)
	require.Equal(t, []Bucket{{0.0005, 1}, {0.001, 6}, {0.01, 16}}, h.buckets)
}

// FuzzQuantile: whatever the buckets (out of order, negative, NaN), a
// quantile is never a panic, and an answer is finite and within the
// bounds' range.
func FuzzQuantile(f *testing.F) {
	f.Add(0.001, 50.0, 0.01, 90.0, 0.1, 99.0, 100.0, 0.95)
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5)
	f.Add(-1.0, 5.0, 1.0, 2.0, math.Inf(1), 1.0, 3.0, 0.99)
	f.Fuzz(func(t *testing.T, b1, c1, b2, c2, b3, c3, total, q float64) {
		var h histogram
		for _, b := range []Bucket{{b1, c1}, {b2, c2}, {b3, c3}} {
			if math.IsNaN(b.UpperBound) || math.IsInf(b.UpperBound, 0) {
				continue // as NewSnapshot: +Inf is never a kept bound; NaN never a bound
			}
			h.addDelta(Series{Value: total, Buckets: []Bucket{b}}, nil)
		}
		v, ok := h.quantile(q)
		if !ok {
			return
		}
		lo, hi := 0.0, 0.0
		for _, b := range h.buckets {
			lo, hi = min(lo, b.UpperBound), max(hi, b.UpperBound)
		}
		if math.IsNaN(v) || v < lo || v > hi {
			t.Fatalf("quantile(%v) = %v outside [%v, %v] for %+v", q, v, lo, hi, h)
		}
	})
}
