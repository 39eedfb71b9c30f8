package pool

import (
	"context"
	"errors"
	"time"
)

// Pause is the operator's PAUSE (as PgBouncer's): while a pool is paused
// every borrow queues, whether or not a connection is idle, and a
// released connection goes idle instead of to a waiter, so the busy count
// only falls; WaitDrained returns once it reaches zero. Resume serves the
// queued borrows in FIFO order. Time spent queued while the pool is
// paused does not count against BorrowTimeout (see waitLocked): a client
// held by a pause sees a delay, never ErrExhausted.
//
// All of it is guarded by Pool.mu; the hot path pays one bool test in
// Acquire and in Release, under the lock it takes anyway.

// ErrResumed is returned by WaitDrained when the pool was resumed (or
// closed) before its busy connections were all released.
var ErrResumed = errors.New("pool: resumed before every server connection was released")

type holdState struct {
	paused bool
	// since is when the current pause began; total is the length of the
	// pauses before it: together the "pause clock" (clockLocked).
	since time.Time
	total time.Duration
	// drained is closed when, while paused, no connection is busy and no
	// dial for a borrow is in flight, or the pause ends; nil when no
	// WaitDrained has asked.
	drained chan struct{}
}

// wake ends every WaitDrained.
func (h *holdState) wake() {
	if h.drained != nil {
		close(h.drained)
		h.drained = nil
	}
}

// clockLocked is the total time the pool has spent paused, up to now;
// it reads the clock only while paused.
func (p *Pool[C]) clockLocked() time.Duration {
	if !p.hold.paused {
		return p.hold.total
	}
	return p.hold.total + time.Since(p.hold.since)
}

// Pause holds every new borrow (they queue, see Pause above) until
// Resume. It does not wait: WaitDrained does. Pausing a paused pool does
// nothing.
func (p *Pool[C]) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold.paused || p.closed {
		return
	}
	p.hold.paused = true
	p.hold.since = time.Now()
}

// Resume ends a pause: queued borrows are served in FIFO order, first
// with idle connections, then with free slots to dial on; the rest wait
// for connections to be released, as usual. Resuming a pool that is not
// paused does nothing.
func (p *Pool[C]) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.hold.paused {
		return
	}
	p.hold.total += time.Since(p.hold.since)
	p.hold.paused = false
	p.hold.wake()
	for p.wl.len > 0 && len(p.idle) > 0 {
		w := p.wl.popFront()
		p.nWaiting.Add(-1)
		c := p.takeIdleLocked(len(p.idle) - 1) // the hottest
		p.addSlots(-1, 1)
		w.ch <- handoff[C]{conn: c}
	}
	p.grantLocked()
}

// Paused reports whether the pool is paused, and whether it is drained:
// paused with no connection busy and no dial for a borrow in flight.
func (p *Pool[C]) Paused() (paused, drained bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hold.paused, p.hold.paused && p.drainedNowLocked()
}

func (p *Pool[C]) drainedNowLocked() bool {
	_, busy := unpackSlots(p.slots.Load())
	return busy == 0 && p.borrowDials == 0
}

// drainedLocked is called wherever the busy count or the borrow dials
// fall: it wakes WaitDrained when a paused pool has drained.
func (p *Pool[C]) drainedLocked() {
	if p.hold.drained != nil && p.drainedNowLocked() {
		p.hold.wake()
	}
}

// WaitDrained waits until the paused pool has no busy connection and no
// dial for a borrow in flight (every server connection is idle or
// closed). It returns nil then, ErrResumed if the pool is not paused (or
// is resumed or closed meanwhile), or ctx's error.
func (p *Pool[C]) WaitDrained(ctx context.Context) error {
	for {
		p.mu.Lock()
		if !p.hold.paused || p.closed {
			p.mu.Unlock()
			return ErrResumed
		}
		if p.drainedNowLocked() {
			p.mu.Unlock()
			return nil
		}
		if p.hold.drained == nil {
			p.hold.drained = make(chan struct{})
		}
		ch := p.hold.drained
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// FailWaiting fails every queued borrow with err (sluice shutting down
// while paused: held clients are told so at once rather than waiting for
// the shutdown timeout).
func (p *Pool[C]) FailWaiting(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for w := p.wl.popFront(); w != nil; w = p.wl.popFront() {
		p.nWaiting.Add(-1)
		w.ch <- handoff[C]{err: err}
	}
}
