package pool

import (
	"context"
	"time"
)

// handoff is what a waiter receives: a connection (busy slot already
// counted), a permission to dial (dialing slot already counted), or an
// error (ErrClosed).
type handoff[C Conn] struct {
	conn C
	dial bool
	err  error
}

// waiter is one queued Acquire. It is recycled through Pool.waiters, so its
// channel and timer are reused; both are idle whenever it is in the
// sync.Pool (the channel is empty, the timer stopped).
type waiter[C Conn] struct {
	prev, next *waiter[C]
	queued     bool            // linked in the wait list; guarded by Pool.mu
	since      time.Time       // when it queued (SHOW POOLS' maxwait); guarded by Pool.mu
	ch         chan handoff[C] // capacity 1: at most one send per wait, never blocks
	timer      *time.Timer
}

// waitlist is an intrusive FIFO of waiters, guarded by Pool.mu. All
// operations are O(1); cancelled waiters unlink themselves.
type waitlist[C Conn] struct {
	head, tail *waiter[C]
	len        int
}

func (l *waitlist[C]) pushBack(w *waiter[C]) {
	w.prev, w.next, w.queued = l.tail, nil, true
	if l.tail == nil {
		l.head = w
	} else {
		l.tail.next = w
	}
	l.tail = w
	l.len++
}

func (l *waitlist[C]) remove(w *waiter[C]) {
	if w.prev == nil {
		l.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		l.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	l.len--
}

func (l *waitlist[C]) popFront() *waiter[C] {
	w := l.head
	if w != nil {
		l.remove(w)
	}
	return w
}

// OldestWait reports since when the longest-waiting borrow has been
// queued (the head of the FIFO), zero when none waits: PgBouncer's
// maxwait. A borrow that was granted a permission to dial has left the
// queue (it shows in sv_login), and time spent paused counts, as a
// queued client sees it. It takes the pool's lock: for the console, not
// for the hot path.
func (p *Pool[C]) OldestWait() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wl.head == nil {
		return time.Time{}
	}
	return p.wl.head.since
}

func (p *Pool[C]) putWaiter(w *waiter[C]) {
	if w != nil {
		p.waiters.Put(w)
	}
}

// waitLocked queues w and waits for a hand-off until d (none when d is
// not fixed: BorrowTimeout 0 while the pool is paused). Time the pool
// spends paused while w waits does not count: d is moved later by it
// (see Pause). It is called with p.mu held and returns with it released.
// A non-nil error means nothing was handed over (or it was given back):
// the caller owns no slot.
func (p *Pool[C]) waitLocked(ctx context.Context, w *waiter[C], d *Deadline) (handoff[C], error) {
	// One clock read per wait, which the deadline needs anyway: it also
	// stamps the waiter for SHOW POOLS' maxwait.
	now := time.Now()
	var left time.Duration
	if !d.at.IsZero() {
		if left = d.at.Sub(now); left <= 0 {
			err := p.timeoutLocked()
			p.mu.Unlock()
			return handoff[C]{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		p.mu.Unlock()
		return handoff[C]{}, err
	}
	w.since = now
	p.wl.pushBack(w)
	p.nWaiting.Add(1)
	mark := p.clockLocked()
	p.mu.Unlock()

	var expired <-chan time.Time
	if !d.at.IsZero() {
		if w.timer == nil {
			w.timer = time.NewTimer(left)
		} else {
			w.timer.Reset(left)
		}
		expired = w.timer.C
	}
	for {
		timedOut := false
		select {
		case h := <-w.ch:
			if expired != nil {
				w.timer.Stop()
			}
			return h, h.err
		case <-expired:
			timedOut = true
		case <-ctx.Done():
			if expired != nil {
				w.timer.Stop()
			}
		}
		if p.testHookWoke != nil {
			p.testHookWoke()
		}

		p.mu.Lock()
		if w.queued {
			if timedOut {
				if now := p.clockLocked(); now > mark {
					// The pool was paused meanwhile: that time is not
					// the borrow's. Wait on for what is left.
					d.at = d.at.Add(now - mark)
					mark = now
					p.mu.Unlock()
					w.timer.Reset(time.Until(d.at))
					continue
				}
			}
			// Nobody served us: leave the queue and report why.
			p.wl.remove(w)
			p.nWaiting.Add(-1)
			var err error
			if timedOut {
				err = p.timeoutLocked()
			}
			p.mu.Unlock()
			if err != nil {
				return handoff[C]{}, err
			}
			return handoff[C]{}, ctx.Err()
		}
		p.mu.Unlock()
		// We were unlinked by a hand-off that raced with our wake-up; it
		// was sent under the lock before the unlink became visible, so it
		// is already buffered.
		h := <-w.ch
		if h.err != nil || ctx.Err() == nil {
			// Closed, or only BorrowTimeout fired: the hand-off was in
			// time as far as the pool is concerned, so use it (a
			// permission to dial then finds the deadline passed; see
			// dialSlot).
			return h, h.err
		}
		// The caller's context is gone: give the hand-off back.
		if h.dial {
			p.freeDialSlot()
		} else {
			p.Release(h.conn)
		}
		return handoff[C]{}, ctx.Err()
	}
}
