package topology

import (
	"sort"
	"time"
)

// maxSamples bounds the primary's WAL history. A sample is kept only when
// the position moved, so at one probe a second this covers over an hour of
// continuous writes; a standby further behind gets a lag of at least that.
const maxSamples = 4096

// sample is the primary's flush position as seen by the probe that ended
// at t.
type sample struct {
	lsn LSN
	t   time.Time
}

// walHistory is the writable primary's flush positions over time, strictly
// increasing in both fields. It is reset when the primary changes.
type walHistory struct {
	samples []sample
}

func (w *walHistory) reset() { w.samples = w.samples[:0] }

// add records a probe of the primary; positions that did not move are
// skipped, so each sample marks the first time a position was seen.
func (w *walHistory) add(lsn LSN, t time.Time) {
	if n := len(w.samples); n > 0 && (lsn <= w.samples[n-1].lsn || !t.After(w.samples[n-1].t)) {
		return
	}
	if len(w.samples) == maxSamples {
		copy(w.samples, w.samples[1:])
		w.samples = w.samples[:maxSamples-1]
	}
	w.samples = append(w.samples, sample{lsn, t})
}

// lag measures a standby that had replayed up to replay when probed at t:
// the age, at t, of the oldest primary position seen no later than t that
// the standby has not replayed (0 if it has replayed everything seen), and
// the bytes between replay and the newest such position. known is false
// when no primary position was seen by t.
//
// The primary reached that oldest unreplayed position at some moment
// between the sample before it and its own sample, so the true staleness is
// at least the age returned and less than one probe interval more: the
// measure errs toward "fresh" by at most one interval, and never reports a
// lag for a standby that is merely idle with its primary.
func (w *walHistory) lag(replay LSN, t time.Time) (lag time.Duration, bytes uint64, known bool) {
	// Samples seen by t: those with s.t <= t.
	n := sort.Search(len(w.samples), func(i int) bool { return w.samples[i].t.After(t) })
	if n == 0 {
		return 0, 0, false
	}
	newest := w.samples[n-1]
	if newest.lsn <= replay {
		return 0, 0, true
	}
	i := sort.Search(n, func(i int) bool { return w.samples[i].lsn > replay })
	return t.Sub(w.samples[i].t), uint64(newest.lsn - replay), true
}
