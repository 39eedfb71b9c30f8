package pool

import (
	"context"
	"time"
)

// EnsureMin dials, one at a time, until idle+busy+dialing >= MinSize. New
// connections go to the oldest waiter or the idle stack. It returns the
// first dial error (stopping there), ErrClosed if the pool is closed, or
// nil. It runs in the caller's goroutine; the owner typically calls it at
// start-up (Maintain does it at every pass, through HealthCheck).
func (p *Pool[C]) EnsureMin(ctx context.Context) error { return p.refill(ctx, 0) }

// refill dials at least n connections (stopping at MaxSize) and then
// more until MinSize are open, one at a time, handing each to the oldest
// waiter or the idle stack. Errors as for EnsureMin.
func (p *Pool[C]) refill(ctx context.Context, n int) error {
	for i := 0; ; i++ {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		if open := p.openLocked(); open >= p.cfg.MaxSize || (i >= n && open >= p.cfg.MinSize) || !p.takeLocked(false) {
			p.mu.Unlock()
			return nil
		}
		p.nDialing.Add(1)
		p.mu.Unlock()

		c, err := p.dial(ctx)
		var now, created time.Time
		if err == nil && p.stamp.Load() {
			now, created = time.Now(), createdAt(c)
		}
		p.mu.Lock()
		p.nDialing.Add(-1)
		p.noteDialLocked(err)
		p.dialedLocked(c, err)
		if err != nil {
			p.dialFailures.Add(1)
			p.grantLocked()
			p.mu.Unlock()
			return err
		}
		p.dials.Add(1)
		p.addSlots(0, 1)
		closeIt := p.putLocked(c, now, created)
		closed := p.closed
		p.mu.Unlock()
		if closeIt {
			p.closeCounted(c)
		}
		if closed {
			return ErrClosed
		}
	}
}

// Resize applies new sizes at once. Idle connections beyond the new MaxSize
// are closed, coldest (least recently used) first; busy ones are closed
// when released. If MaxSize grew, waiters are allowed to dial. New
// timeouts apply from the next HealthCheck or Release; a new
// HealthCheckPeriod restarts Maintain's wait with that period at once.
func (p *Pool[C]) Resize(cfg Config) {
	cfg = cfg.normalized()
	p.mu.Lock()
	if cfg.HealthCheckPeriod != p.cfg.HealthCheckPeriod {
		select {
		case p.reconf <- struct{}{}:
		default: // Maintain has a token pending already
		}
	}
	p.cfg = cfg
	p.stamp.Store(cfg.timed())
	excess := p.trimLocked()
	p.grantLocked()
	p.mu.Unlock()
	for _, c := range excess {
		p.closeCounted(c)
	}
}

// trimLocked takes idle connections beyond MaxSize off the bottom of the
// stack, where the coldest are, moving their slots to nClosing; the caller
// must closeCounted each after unlocking.
func (p *Pool[C]) trimLocked() []C {
	over := min(p.openLocked()-p.cfg.MaxSize, len(p.idle))
	if over <= 0 {
		return nil
	}
	excess := make([]C, over)
	for i := range excess {
		excess[i] = p.idle[i].conn
	}
	n := copy(p.idle, p.idle[over:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	p.addSlots(-over, 0)
	p.nClosing.Add(int64(over))
	return excess
}

// Close closes idle connections now and fails waiters and later Acquire
// and EnsureMin calls with ErrClosed. Busy connections stay with their
// holders and are closed when released or discarded; dials in flight and
// connections HealthCheck is probing are closed when they complete. Close is idempotent and does not wait.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	idle := p.idle
	p.idle = nil
	p.addSlots(-len(idle), 0)
	for w := p.wl.popFront(); w != nil; w = p.wl.popFront() {
		p.nWaiting.Add(-1)
		w.ch <- handoff[C]{err: ErrClosed}
	}
	p.hold.wake()
	p.retire.wake()
	p.checkDone.Broadcast()
	p.nClosing.Add(int64(len(idle))) // counted until closed: the gate's tokens with them
	g := p.gate
	p.mu.Unlock()
	for _, e := range idle {
		// A plain close, not Terminate's wait: shutting down must not
		// wait a second per connection for a server that stopped
		// answering.
		_ = e.conn.Close()
		p.mu.Lock()
		p.nClosing.Add(-1)
		p.settleLocked()
		p.mu.Unlock()
	}
	if g != nil {
		g.leave(p)
	}
}
