package pool

import (
	"errors"
	"math"
	"time"
)

// Config sizes a pool. Invalid values are normalised, never rejected:
// MaxSize is clamped to [1, MaxInt32], MinSize to [0, MaxSize], and a
// negative duration means 0.
type Config struct {
	MinSize int // kept open (by Maintain / EnsureMin / HealthCheck)
	MaxSize int // never more open (idle + busy + dialing) than this
	// BorrowTimeout bounds one borrow: queueing behind busy connections
	// and dialling a new one together (see Deadline). 0 = never queue (fail
	// at once when all MaxSize are busy); a dial then runs without a
	// deadline, bounded by the dial function's own retries.
	BorrowTimeout time.Duration

	// IdleTimeout: HealthCheck closes (and replaces) idle connections
	// released longer ago than this. 0 disables.
	IdleTimeout time.Duration
	// MaxLifetime retires a connection once it is older than MaxLifetime
	// jittered by ±10% per connection, so a pool filled at once does not
	// expire at once: on Release (instead of going idle) and in HealthCheck
	// when idle, never while busy. Age counts from CreatedAt() for
	// connections that have that method (see Created); others never expire
	// by age, because the pool keeps no per-connection map. 0 disables.
	MaxLifetime time.Duration
	// HealthCheckPeriod is how often Maintain runs HealthCheck. 0 means
	// Maintain runs one pass only (until a Resize sets a period).
	HealthCheckPeriod time.Duration
}

// Created is the optional interface through which the pool learns a
// connection's creation time for MaxLifetime (*backend.Conn implements it).
type Created interface{ CreatedAt() time.Time }

func (c Config) normalized() Config {
	c.MaxSize = min(max(c.MaxSize, 1), math.MaxInt32) // idle and busy counts are packed in 32 bits
	c.MinSize = min(max(c.MinSize, 0), c.MaxSize)
	c.BorrowTimeout = max(c.BorrowTimeout, 0)
	c.IdleTimeout = max(c.IdleTimeout, 0)
	c.MaxLifetime = max(c.MaxLifetime, 0)
	c.HealthCheckPeriod = max(c.HealthCheckPeriod, 0)
	return c
}

// timed reports whether Release must stamp connections with the time.
func (c Config) timed() bool { return c.IdleTimeout > 0 || c.MaxLifetime > 0 }

// Stats is a snapshot of the pool. Fields are read one by one without the
// lock, so a snapshot taken while the pool is busy may be off by one
// between fields; each field on its own is exact.
type Stats struct {
	Idle, Busy, Dialing, Waiting int
	// Dials counts connections opened successfully, DialFailures failed dial
	// attempts and Timeouts Acquire calls that returned ErrExhausted.
	Dials, DialFailures, Timeouts uint64
	// Recycled counts connections closed for IdleTimeout or MaxLifetime;
	// DeadRemoved idle connections that alive reported dead (found by
	// Acquire or HealthCheck).
	Recycled, DeadRemoved uint64
	// Replaced counts connections closed because the pool was full and a
	// client needed one opened with other settings (Affinity.Exact).
	Replaced uint64
}

var (
	// ErrExhausted means every connection was busy and BorrowTimeout passed
	// (or was 0). Callers report SQLSTATE 53300 naming borrow_timeout.
	// *UnreachableError matches it when the pool was failing to dial.
	ErrExhausted = errors.New("pool: all server connections are busy (borrow_timeout reached)")
	// ErrClosed is returned by Acquire and EnsureMin once Close was called.
	ErrClosed = errors.New("pool: closed")
)

// Stats returns the current counters without taking the lock.
func (p *Pool[C]) Stats() Stats {
	idle, busy := unpackSlots(p.slots.Load())
	return Stats{
		Idle:         idle + int(p.nChecking.Load()), // being probed by HealthCheck
		Busy:         busy,
		Dialing:      int(p.nDialing.Load()),
		Waiting:      int(p.nWaiting.Load()),
		Dials:        p.dials.Load(),
		DialFailures: p.dialFailures.Load(),
		Timeouts:     p.timeouts.Load(),
		Recycled:     p.recycled.Load(),
		DeadRemoved:  p.deadRemoved.Load(),
		Replaced:     p.replaced.Load(),
	}
}

// Config returns the configuration in force (normalised).
func (p *Pool[C]) Config() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}
