// Package refusal decides how refused clients are logged: the first
// refusal of a kind from an address in full, the rest of a burst as one
// summary line per interval. A flood from one address then costs a few log
// lines, not one per connection, while a single refusal is still logged
// with all its detail the moment it happens.
//
// Summariser is a pure type: it keeps no goroutine and reads no clock; the
// caller passes the time and logs what it decides. Its memory is bounded
// by MaxKeys.
package refusal

import (
	"sync"
	"time"
)

// DefaultInterval is how often a continuing burst is summarised.
const DefaultInterval = 10 * time.Second

// DefaultMaxKeys bounds how many (address, reason) pairs are tracked.
const DefaultMaxKeys = 10_000

// Overflow is the one key under which refusals are counted once MaxKeys
// keys are tracked: whatever their address and reason, they are counted
// together, never logged one by one.
var Overflow = Key{Addr: "other addresses", Reason: "any"}

// Key is what refusals are summarised by. Reason is a short fixed label
// (a metric reason or a SQLSTATE), never free text from the client, so
// that a client cannot make every refusal a new key.
type Key struct {
	Addr   string
	Reason string
}

// Summary reports the refusals of one key that were not logged one by
// one: Count of them since Since.
type Summary struct {
	Key
	Count int
	Since time.Time
}

// Summariser tracks recent refusals per Key. Safe for concurrent use.
type Summariser struct {
	interval time.Duration
	maxKeys  int

	mu      sync.Mutex
	windows map[Key]*window
}

// window is one key's current interval: when it started and how many
// refusals were held back since.
type window struct {
	start time.Time
	held  int
}

// New returns a Summariser that summarises every interval (<= 0:
// DefaultInterval) and tracks at most maxKeys keys (<= 0: DefaultMaxKeys).
func New(interval time.Duration, maxKeys int) *Summariser {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Summariser{interval: interval, maxKeys: maxKeys, windows: map[Key]*window{}}
}

// Interval is how often Flush should be called.
func (s *Summariser) Interval() time.Duration { return s.interval }

// Note records one refusal at now and reports whether the caller should
// log it in full: true for the first refusal of a key that had none in
// the last interval, false while a burst goes on (the refusal is then
// counted in the key's next Summary). Once MaxKeys keys are tracked, a new
// key is counted under Overflow, whose first refusal is logged.
func (s *Summariser) Note(k Key, now time.Time) (logInFull bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.windows[k]
	if w == nil && len(s.windows) >= s.maxKeys {
		k = Overflow
		w = s.windows[k]
	}
	if w == nil {
		s.windows[k] = &window{start: now}
		return true
	}
	w.held++
	return false
}

// Flush ends every window that is at least one interval old, and returns
// a Summary for each that held refusals back. A key whose window held
// none is forgotten, so its next refusal is logged in full again; a key
// still refused starts a new window and stays summarised.
func (s *Summariser) Flush(now time.Time) []Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Summary
	for k, w := range s.windows {
		if now.Sub(w.start) < s.interval {
			continue
		}
		if w.held == 0 {
			delete(s.windows, k)
			continue
		}
		out = append(out, Summary{Key: k, Count: w.held, Since: w.start})
		w.start, w.held = now, 0
	}
	return out
}

// Len is the number of keys tracked.
func (s *Summariser) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.windows)
}
