package dashboard

import (
	"math"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Snapshot is the part of one gather of sluice's registry that the
// dashboard reads: the watched families only, copied out of the protobuf
// types so that a Snapshot is immutable and cheap to keep for a minute.
type Snapshot struct {
	At     time.Time
	Series map[string][]Series // by metric name
	idx    *seriesIndex        // nil until indexed
}

// Series is one labelled series of a family.
type Series struct {
	Labels map[string]string
	// Value of a gauge, counter or untyped series; a histogram's count.
	Value float64
	// Buckets of a histogram: the classic buckets, cumulative, by
	// ascending upper bound, +Inf excluded (Value is the total count).
	// A native histogram exported with classic buckets as its fallback
	// is read through them; one without them has none, and its
	// percentiles show as absent.
	Buckets []Bucket
}

// Bucket is one cumulative classic histogram bucket.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// NewSnapshot copies the watched families of a gather taken at at.
func NewSnapshot(at time.Time, families []*dto.MetricFamily) Snapshot {
	s := Snapshot{At: at, Series: make(map[string][]Series)}
	for _, f := range families {
		name := f.GetName()
		if !watched[name] {
			continue
		}
		series := make([]Series, 0, len(f.GetMetric()))
		for _, m := range f.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out := Series{Labels: labels}
			switch {
			case m.Gauge != nil:
				out.Value = m.Gauge.GetValue()
			case m.Counter != nil:
				out.Value = m.Counter.GetValue()
			case m.Untyped != nil:
				out.Value = m.Untyped.GetValue()
			case m.Histogram != nil:
				out.Value = float64(m.Histogram.GetSampleCount())
				if m.Histogram.SampleCountFloat != nil {
					out.Value = m.Histogram.GetSampleCountFloat()
				}
				for _, b := range m.Histogram.GetBucket() {
					if math.IsInf(b.GetUpperBound(), +1) {
						continue
					}
					c := float64(b.GetCumulativeCount())
					if b.CumulativeCountFloat != nil {
						c = b.GetCumulativeCountFloat()
					}
					out.Buckets = append(out.Buckets, Bucket{UpperBound: b.GetUpperBound(), Count: c})
				}
			default:
				continue
			}
			// JSON has no NaN or infinity: such a value is shown as
			// absent rather than failing the whole view.
			if math.IsNaN(out.Value) || math.IsInf(out.Value, 0) {
				continue
			}
			series = append(series, out)
		}
		s.Series[name] = series
	}
	return indexed(s)
}
