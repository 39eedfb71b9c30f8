package pool

import (
	"errors"
	"math"
	"time"
)

// Config sizes a pool. Invalid values are normalised, never rejected:
// MaxSize is clamped to [1, MaxInt32], MinSize to [0, MaxSize], and a
// negative BorrowTimeout means 0.
type Config struct {
	MinSize       int           // kept open (by Maintain / EnsureMin)
	MaxSize       int           // never more open (idle + busy + dialing) than this
	BorrowTimeout time.Duration // how long Acquire waits when all MaxSize are busy; 0 = fail at once
}

func (c Config) normalized() Config {
	c.MaxSize = min(max(c.MaxSize, 1), math.MaxInt32) // idle and busy counts are packed in 32 bits
	c.MinSize = min(max(c.MinSize, 0), c.MaxSize)
	c.BorrowTimeout = max(c.BorrowTimeout, 0)
	return c
}

// Stats is a snapshot of the pool. Fields are read one by one without the
// lock, so a snapshot taken while the pool is busy may be off by one
// between fields; each field on its own is exact.
type Stats struct {
	Idle, Busy, Dialing, Waiting int
	// Dials counts connections opened successfully, DialFailures failed dial
	// attempts and Timeouts Acquire calls that returned ErrExhausted.
	Dials, DialFailures, Timeouts uint64
}

var (
	// ErrExhausted means every connection was busy and BorrowTimeout passed
	// (or was 0). Callers report SQLSTATE 53300 naming borrow_timeout.
	ErrExhausted = errors.New("pool: all server connections are busy (borrow_timeout reached)")
	// ErrClosed is returned by Acquire and EnsureMin once Close was called.
	ErrClosed = errors.New("pool: closed")
)

// Stats returns the current counters without taking the lock.
func (p *Pool[C]) Stats() Stats {
	idle, busy := unpackSlots(p.slots.Load())
	return Stats{
		Idle:         idle,
		Busy:         busy,
		Dialing:      int(p.nDialing.Load()),
		Waiting:      int(p.nWaiting.Load()),
		Dials:        p.dials.Load(),
		DialFailures: p.dialFailures.Load(),
		Timeouts:     p.timeouts.Load(),
	}
}

// Config returns the configuration in force (normalised).
func (p *Pool[C]) Config() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}
