package pool

import (
	"context"
	"errors"
	"time"
)

// EnsureMin dials, one at a time, until idle+busy+dialing >= MinSize. New
// connections go to the oldest waiter or the idle stack. It returns the
// first dial error (stopping there), ErrClosed if the pool is closed, or
// nil. It runs in the caller's goroutine; the owner typically calls it at
// start-up and from Maintain.
func (p *Pool[C]) EnsureMin(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		if p.openLocked() >= p.cfg.MinSize {
			p.mu.Unlock()
			return nil
		}
		p.nDialing.Add(1)
		p.mu.Unlock()

		c, err := p.dial(ctx)
		p.mu.Lock()
		p.nDialing.Add(-1)
		if err != nil {
			p.dialFailures.Add(1)
			p.grantLocked()
			p.mu.Unlock()
			return err
		}
		p.dials.Add(1)
		p.addSlots(0, 1)
		closeIt := p.putLocked(c)
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

// Maintain calls EnsureMin at once and then every interval (at least 1ms)
// until ctx is done or the pool is closed. It blocks in the caller's
// goroutine, which the caller owns and stops by cancelling ctx. Dial errors
// go to onErr (which may be nil) and are retried at the next tick.
func (p *Pool[C]) Maintain(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(max(interval, time.Millisecond))
	defer t.Stop()
	for {
		switch err := p.EnsureMin(ctx); {
		case errors.Is(err, ErrClosed):
			return
		case err != nil && ctx.Err() == nil && onErr != nil:
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Resize applies new sizes at once. Idle connections beyond the new MaxSize
// are closed, coldest (least recently used) first; busy ones are closed
// when released. If MaxSize grew, waiters are allowed to dial.
func (p *Pool[C]) Resize(cfg Config) {
	cfg = cfg.normalized()
	var excess []C
	p.mu.Lock()
	p.cfg = cfg
	if over := min(p.openLocked()-cfg.MaxSize, len(p.idle)); over > 0 {
		// The bottom of the stack holds the coldest connections.
		excess = append(excess, p.idle[:over]...)
		n := copy(p.idle, p.idle[over:])
		clear(p.idle[n:])
		p.idle = p.idle[:n]
		p.addSlots(-over, 0)
		p.nClosing.Add(int64(over))
	}
	p.grantLocked()
	p.mu.Unlock()
	for _, c := range excess {
		p.closeCounted(c)
	}
}

// Close closes idle connections now and fails waiters and later Acquire
// and EnsureMin calls with ErrClosed. Busy connections stay with their
// holders and are closed when released or discarded; dials in flight are
// closed when they complete. Close is idempotent and does not wait.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.addSlots(-len(idle), 0)
	for w := p.wl.popFront(); w != nil; w = p.wl.popFront() {
		p.nWaiting.Add(-1)
		w.ch <- handoff[C]{err: ErrClosed}
	}
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
}
