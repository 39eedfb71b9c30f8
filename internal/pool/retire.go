package pool

import (
	"context"
	"time"
)

// Reconnect is the operator's RECONNECT (as PgBouncer's): every
// connection open now is retired. Idle ones are closed at once, busy ones
// when released (never behind their holder's back), and new ones are
// dialled on demand. A connection is told apart by its creation time
// (Created), so the pool keeps no per-connection record: retired means
// created no later than the last Reconnect's mark. The pool counts the retired
// connections still open, so WaitRetired can wait for the last one
// (WAIT_CLOSE). Connection types without Created are never retired once
// busy: only their idle connections are closed.
//
// Guarded by Pool.mu; while nothing is retiring the hot path pays one int
// test in Release, under the lock it takes anyway.
type retireState struct {
	mark  time.Time // the last Reconnect
	count int       // retired connections still open
	// done is closed when count reaches 0; nil when no WaitRetired asked.
	done chan struct{}
}

func (r *retireState) wake() {
	if r.done != nil {
		close(r.done)
		r.done = nil
	}
}

// staleLocked reports whether c was retired by Reconnect.
func (p *Pool[C]) staleLocked(c C) bool {
	if p.retire.count == 0 {
		return false
	}
	created := createdAt(c)
	return !created.IsZero() && !created.After(p.retire.mark)
}

// retiredLocked is told of every connection the pool closes: a retired
// one is no longer counted.
func (p *Pool[C]) retiredLocked(c C) {
	if p.staleLocked(c) {
		p.retire.count--
		if p.retire.count == 0 {
			p.retire.wake()
		}
	}
}

// dialedLocked is told of every dial's result: a connection whose socket
// was opened before the mark by a dial still running at Reconnect is
// retired too (Reconnect counted only the connections it could see).
func (p *Pool[C]) dialedLocked(c C, err error) {
	if err != nil || p.retire.mark.IsZero() {
		return
	}
	if created := createdAt(c); !created.IsZero() && !created.After(p.retire.mark) {
		p.retire.count++
	}
}

// Reconnect retires every connection open now (see retireState): idle
// ones are closed before it returns, busy ones when released.
func (p *Pool[C]) Reconnect() { p.Retire()() }

// Retire is Reconnect in two steps: it retires every connection open
// now and takes the idle ones out of the pool (no borrow gets them, and
// they count as open until closed), and returns what closes those, one
// after the other, each waiting up to a second for its server to say
// goodbye. The caller runs it where that wait does not matter (RELOAD
// runs it in the background: the old server may not answer).
func (p *Pool[C]) Retire() (closeIdle func()) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return func() {}
	}
	p.retire.mark = time.Now()
	idle, busy := unpackSlots(p.slots.Load())
	p.retire.count = idle + busy + int(p.nChecking.Load()+p.nClosing.Load())
	if _, ok := any(*new(C)).(Created); !ok {
		p.retire.count = 0 // ages unknown: only the idle ones can be closed
	}
	old := p.idle
	p.idle = make([]idleConn[C], 0, cap(old))
	p.addSlots(-idle, 0)
	p.nClosing.Add(int64(idle))
	if p.retire.count == 0 {
		p.retire.wake()
	}
	p.mu.Unlock()
	return func() {
		for _, e := range old {
			p.closeCounted(e.conn)
		}
	}
}

// Retiring reports how many connections retired by Reconnect are still
// open (SHOW SERVERS' close_needed).
func (p *Pool[C]) Retiring() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retire.count
}

// Retired reports whether c, open now, was retired by the last
// Reconnect: it will be closed when released (SHOW SERVERS'
// close_needed). c need not be the pool's: a connection opened like the
// pool's but held outside it (the LISTEN fan-out's listener) was retired
// too if it is as old. Connection types without Created are never
// retired. It takes the pool's lock: for the console and once-a-second
// checks, not for the hot path.
func (p *Pool[C]) Retired(c C) bool {
	created := createdAt(c)
	p.mu.Lock()
	defer p.mu.Unlock()
	return !created.IsZero() && !p.retire.mark.IsZero() && !created.After(p.retire.mark)
}

// WaitRetired waits until every connection retired by Reconnect is
// closed (at once when none is), or the pool is closed, or ctx ends.
func (p *Pool[C]) WaitRetired(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.retire.count == 0 || p.closed {
			p.mu.Unlock()
			return nil
		}
		if p.retire.done == nil {
			p.retire.done = make(chan struct{})
		}
		ch := p.retire.done
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
