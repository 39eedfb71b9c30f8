package dashboard

import (
	"math"
	"slices"
)

// histogram is a classic histogram's increase over a window: cumulative
// bucket counts by ascending upper bound and the total count (which
// includes the +Inf bucket).
type histogram struct {
	buckets []Bucket
	total   float64
}

// addDelta adds later minus earlier (a series' increase over the window)
// to h, merging buckets by upper bound so that series with different
// bounds still sum correctly. A series whose count went down was reset
// (its pool was recreated): then its whole later value is the increase,
// as Prometheus's increase() takes it. earlier may be nil (the series is
// new within the window).
func (h *histogram) addDelta(later Series, earlier *Series) {
	total := later.Value
	var base map[float64]float64
	if earlier != nil && earlier.Value <= later.Value {
		total -= earlier.Value
		base = make(map[float64]float64, len(earlier.Buckets))
		for _, b := range earlier.Buckets {
			base[b.UpperBound] = b.Count
		}
	}
	h.total += total
	for _, b := range later.Buckets {
		d := max(b.Count-base[b.UpperBound], 0)
		i, found := slices.BinarySearchFunc(h.buckets, b.UpperBound, func(x Bucket, ub float64) int {
			switch {
			case x.UpperBound < ub:
				return -1
			case x.UpperBound > ub:
				return 1
			}
			return 0
		})
		if found {
			h.buckets[i].Count += d
		} else {
			h.buckets = slices.Insert(h.buckets, i, Bucket{UpperBound: b.UpperBound, Count: d})
		}
	}
}

// quantile estimates the q-quantile (0 <= q <= 1) as Prometheus's
// histogram_quantile does: linear interpolation inside the bucket where
// the rank falls, the first bucket starting at 0, and a rank beyond the
// last finite bound answered with that bound. ok is false when the
// histogram is empty or has no finite bucket.
func (h histogram) quantile(q float64) (v float64, ok bool) {
	if h.total <= 0 || len(h.buckets) == 0 || math.IsNaN(q) || math.IsNaN(h.total) || math.IsInf(h.total, 0) {
		return 0, false
	}
	q = min(max(q, 0), 1)
	rank := q * h.total
	prevBound, prevCount := 0.0, 0.0
	for i, b := range h.buckets {
		// Merged and subtracted counts may be out of order by rounding
		// or a reset mid-window: never let them go backwards.
		count := max(b.Count, prevCount)
		if count >= rank && count > prevCount {
			if i == 0 && b.UpperBound <= 0 {
				return b.UpperBound, true
			}
			start := prevBound
			if i == 0 {
				start = min(0, b.UpperBound)
			}
			v := start + (b.UpperBound-start)*(rank-prevCount)/(count-prevCount)
			return min(max(v, start), b.UpperBound), true // rounding may step out
		}
		prevBound, prevCount = b.UpperBound, count
	}
	return prevBound, true
}
