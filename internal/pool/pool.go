// Package pool is a generic pool of server connections for one
// (database, user) pair.
//
// Semantics follow PgBouncer and GatewayD: idle ("available") and busy
// connections are tracked separately, at most MaxSize connections are ever
// open (idle + busy + being dialled), and a client that finds every
// connection busy waits in a FIFO queue. BorrowTimeout bounds the whole
// borrow: the queue wait and the dial of a new connection together
// (deadline.go), as PgBouncer keeps a client queued until
// query_wait_timeout while it retries the server.
//
// Design (ideas from Vitess smartconnpool, not its code):
//
//   - One mutex guards the idle stack, the wait list and the slot counts.
//     Every critical section is O(1) and a handful of instructions, so an
//     uncontended Acquire/Release pair costs two lock round trips and no
//     allocation. A single lock makes "newcomers never overtake waiters" and
//     "a released connection goes straight to the oldest waiter" trivially
//     true, which a lock-free stack plus a separate wait list cannot promise.
//   - Idle connections form a LIFO stack: the most recently released (hot)
//     connection is reused first and cold ones sink to the bottom, where
//     Resize trims them.
//   - A waiter receives exactly one "hand-off" on a buffered channel of its
//     own: a connection, a permission to dial (a free slot already counted
//     for it), or ErrClosed. The hand-off is sent under the lock after the
//     waiter has been unlinked, so it can never be delivered twice and a
//     waiter that gave up can always tell whether it was served.
//   - dial, alive and Conn.Close run outside the lock: they may be slow.
//   - Health (health.go): an idle entry carries its creation and release
//     times, so HealthCheck needs no per-connection map; a busy connection's
//     age comes from the optional Created interface on Release.
//   - Counters are atomics (written under the lock) so Stats never blocks.
//
// Goroutines: the pool owns none. Acquire, EnsureMin and Maintain run in the
// caller's goroutine; the owner decides where EnsureMin/Maintain run.
//
// Ownership: a connection returned by Acquire belongs to the caller until it
// hands it back with exactly one Release or Discard. The pool closes
// connections it owns (idle ones, excess ones, ones returned after Close);
// it never closes a busy connection behind its holder's back.
package pool

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a server connection the pool can close.
type Conn interface{ Close() error }

// Terminator is the optional interface of a connection that can be
// closed gracefully at a clean point: it tells the server and waits
// (bounded) until the server has ended (*backend.Conn implements it).
type Terminator interface{ Terminate() error }

// Pool is a bounded pool of connections of type C. The zero value is not
// usable; create pools with New.
type Pool[C Conn] struct {
	dial  func(ctx context.Context) (C, error)
	alive func(C) bool
	probe bool // alive was given: HealthCheck probes idle connections

	mu     sync.Mutex
	cfg    Config        // guarded by mu
	closed bool          // guarded by mu
	idle   []idleConn[C] // guarded by mu; stack, top = most recently released
	wl     waitlist[C]

	// checkDone is signalled (with mu as its lock) when HealthCheck gives
	// back the idle connections it was probing, or the pool closes.
	checkDone sync.Cond
	// done is closed by Close; reconf gets a token when Resize changes
	// HealthCheckPeriod. Both wake Maintain.
	done, reconf chan struct{}
	seed         uint64      // mixes creation times into lifetime jitter
	stamp        atomic.Bool // cfg.timed(): Release records times

	// Written under mu, read anywhere. slots packs the idle (low 32 bits)
	// and busy (high 32 bits) counts so the hot path moves a connection
	// between them with one atomic add instead of two. nClosing counts
	// connections the pool is closing outside the lock (not in Stats),
	// nChecking idle ones HealthCheck is probing (counted as idle in Stats).
	slots                                   atomic.Uint64
	nDialing, nWaiting, nClosing, nChecking atomic.Int64
	dials, dialFailures, timeouts           atomic.Uint64
	recycled, deadRemoved, replaced         atomic.Uint64
	// lastDialErr is the error of the last dial made for a borrow, nil
	// once one succeeds; a borrow that times out reports it (guarded by mu).
	lastDialErr error

	waiters sync.Pool // *waiter[C], recycled so waiting does not allocate

	// The operator's controls (pause.go, retire.go); all guarded by mu.
	hold        holdState   // Pause: borrows queue, connections go idle
	retire      retireState // Reconnect: connections opened before a mark are closed
	borrowDials int         // dials for a borrow in flight (a subset of nDialing)

	// gate, if the pool joined one (JoinGate: max_db_connections), bounds
	// its open connections together with other pools'; tokens is how
	// many of the gate's tokens it holds, never fewer than it has open
	// (gate.go). Both guarded by mu.
	gate   *Gate
	tokens int

	// testHookWoke, if set, runs in a waiter right after it stopped waiting
	// and before it takes the lock; tests use it to force hand-off races.
	testHookWoke func()
}

// New creates a pool. dial opens a connection (it may block for long:
// retries and backoff live inside it; it must honour ctx). When it dials
// for a borrow, ctx carries the borrow's deadline (see Deadline), and dial
// may keep retrying until then: the client is waiting anyway. alive reports
// whether an idle connection may be handed out; it must be cheap and
// non-blocking (HealthCheck also probes idle connections with it, and an
// Acquire finding none idle meanwhile waits for the probe); nil means
// always alive, and HealthCheck then probes nothing. New opens nothing:
// call EnsureMin or Maintain for that.
func New[C Conn](cfg Config, dial func(ctx context.Context) (C, error), alive func(C) bool) *Pool[C] {
	cfg = cfg.normalized()
	probe := alive != nil
	if alive == nil {
		alive = func(C) bool { return true }
	}
	p := &Pool[C]{
		probe:  probe,
		dial:   dial,
		alive:  alive,
		cfg:    cfg,
		idle:   make([]idleConn[C], 0, min(cfg.MaxSize, 64)),
		done:   make(chan struct{}),
		reconf: make(chan struct{}, 1),
		seed:   rand.Uint64(),
	}
	p.checkDone.L = &p.mu
	p.stamp.Store(cfg.timed())
	p.waiters.New = func() any { return &waiter[C]{ch: make(chan handoff[C], 1)} }
	return p
}

// Acquire returns a connection, which the caller must give back with
// Release or Discard. In order of preference it takes the most recently
// released idle connection (dead ones, per alive, are closed and skipped),
// dials a new one if fewer than MaxSize are open, or queues behind earlier
// waiters. Waiting and dialling together take at most BorrowTimeout (see
// Deadline). Errors: ErrExhausted (or *UnreachableError, which matches it,
// when the last dial had failed), ErrClosed, the dial error, or ctx.Err()
// if ctx ends first.
func (p *Pool[C]) Acquire(ctx context.Context) (C, error) {
	var d Deadline
	return p.AcquireWithin(ctx, &d)
}

// AcquireWithin is Acquire for a borrow that may span several
// acquisitions, all bounded by the one deadline d (fixed by the first
// that has to wait or dial, if the caller has not fixed it).
func (p *Pool[C]) AcquireWithin(ctx context.Context, d *Deadline) (C, error) {
	return p.acquire(ctx, d, Affinity{}, false)
}

// AcquireFor is AcquireWithin with settings affinity (see Affinity): it
// takes the most recently released idle connection with aff.Key, else
// dials if fewer than MaxSize are open, else (not aff.Exact) the most
// recently released idle connection of any key, else queues. With
// aff.Exact it replaces a connection of another key rather than hand it
// out.
func (p *Pool[C]) AcquireFor(ctx context.Context, d *Deadline, aff Affinity) (C, error) {
	return p.acquire(ctx, d, aff, true)
}

func (p *Pool[C]) acquire(ctx context.Context, d *Deadline, aff Affinity, keyed bool) (C, error) {
	var (
		zero C
		w    *waiter[C] // taken from p.waiters only if we have to wait
		// entitled is set after we closed a dead connection we had been
		// given: its slot is ours, so we may reuse it ahead of the queue.
		entitled bool
	)
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			p.putWaiter(w)
			return zero, ErrClosed
		}
		// While paused every borrow queues (see Pause), even with idle
		// connections or free slots.
		held := p.hold.paused
		first := !held && (entitled || p.wl.len == 0)
		i := -1
		if first {
			i = p.matchIdleLocked(aff, keyed)
		}
		var c C
		switch {
		case i >= 0:
			c = p.takeIdleLocked(i)
			p.addSlots(-1, 1)
			p.mu.Unlock()
		case first && p.nChecking.Load() > 0:
			// HealthCheck is probing the idle connections, which takes
			// microseconds (alive must not block): wait for them rather
			// than dial (milliseconds) or report exhaustion.
			p.checkDone.Wait()
			continue
		case first && p.openLocked() < p.cfg.MaxSize && p.takeLocked(true):
			p.nDialing.Add(1)
			p.borrowDials++
			deadline := p.fixDeadlineLocked(d)
			p.mu.Unlock()
			p.putWaiter(w)
			return p.dialSlot(ctx, deadline)
		case first && len(p.idle) > 0: // exact, full, and no idle connection matches
			c = p.takeIdleLocked(0) // the coldest
			p.addSlots(-1, 1)
			deadline := p.fixDeadlineLocked(d)
			p.mu.Unlock()
			p.putWaiter(w)
			return p.replace(ctx, c, deadline)
		case !held && p.cfg.BorrowTimeout == 0:
			err := p.timeoutLocked()
			p.mu.Unlock()
			return zero, err
		default:
			if w == nil {
				w = p.waiters.Get().(*waiter[C])
			}
			p.fixDeadlineLocked(d)
			h, err := p.waitLocked(ctx, w, d)
			if err != nil {
				p.putWaiter(w)
				return zero, err
			}
			deadline := d.at // a pause the waiter sat through moved it
			if h.dial {
				p.putWaiter(w)
				return p.dialSlot(ctx, deadline)
			}
			c = h.conn
			if aff.Exact && keyOf(c) != aff.Key {
				p.putWaiter(w)
				return p.replace(ctx, c, deadline)
			}
		}
		// We hold c and its busy slot; the lock is not held.
		if p.alive(c) {
			p.putWaiter(w)
			return c, nil
		}
		_ = c.Close()
		p.deadRemoved.Add(1)
		p.mu.Lock()
		p.addSlots(0, -1)
		p.retiredLocked(c)
		p.drainedLocked()
		p.settleLocked()
		entitled = true
	}
}

// replace closes c, a connection opened with other settings whose busy
// slot the caller holds, and dials on its slot within deadline. The close
// completes before the dial starts, so the server never sees more than
// MaxSize.
func (p *Pool[C]) replace(ctx context.Context, c C, deadline time.Time) (C, error) {
	_ = c.Close()
	p.replaced.Add(1)
	p.mu.Lock()
	p.addSlots(0, -1)
	p.retiredLocked(c)
	p.nDialing.Add(1)
	p.borrowDials++
	p.mu.Unlock()
	return p.dialSlot(ctx, deadline)
}

// Release gives back a healthy connection obtained from Acquire: it goes to
// the oldest waiter if there is one, else on top of the idle stack. It is
// closed instead if the pool is closed or shrank below its open count, or
// if it outlived MaxLifetime.
func (p *Pool[C]) Release(c C) {
	var now, created time.Time
	if p.stamp.Load() { // only pay for the clock when a timeout needs it
		now, created = time.Now(), createdAt(c)
	}
	p.mu.Lock()
	closeIt := p.putLocked(c, now, created)
	p.mu.Unlock()
	if closeIt {
		p.closeCounted(c)
	}
}

// Discard closes a connection obtained from Acquire (broken, or in a state
// that cannot be reset) and frees its slot; the oldest waiter, if any, is
// then allowed to dial a replacement.
func (p *Pool[C]) Discard(c C) {
	// Close first so that the replacement dial never overlaps it: the server
	// never sees more than MaxSize connections from this pool.
	_ = c.Close()
	p.mu.Lock()
	p.addSlots(0, -1)
	p.retiredLocked(c)
	p.drainedLocked()
	p.grantLocked()
	p.mu.Unlock()
}

// Adopt counts c, a connection another process opened (the upgrade
// hand-off of a session-mode client), as a busy connection of this pool,
// as if a borrow had dialled it; its holder ends the borrow as usual
// (Release or Discard). ErrExhausted: the pool, or its gate, has no room
// for one more (the caller leaves c where it was).
func (p *Pool[C]) Adopt(c C) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.openLocked() >= p.cfg.MaxSize || !p.takeLocked(false):
		return ErrExhausted
	}
	p.addSlots(0, 1)
	return nil
}

// openLocked counts every slot in use. Connections being closed still
// count until Close returns, so a dial never overlaps a close and the
// server never sees more than MaxSize connections from this pool.
func (p *Pool[C]) openLocked() int {
	idle, busy := unpackSlots(p.slots.Load())
	return idle + busy + int(p.nDialing.Load()+p.nClosing.Load()+p.nChecking.Load())
}

// addSlots adds to the idle and busy counts (either may be negative) with
// a single atomic add: the packed word's arithmetic is exact modulo 2^64
// as long as both resulting counts lie in [0, 2^32).
func (p *Pool[C]) addSlots(idle, busy int) {
	p.slots.Add(uint64(int64(idle)) + uint64(int64(busy))<<32)
}

func unpackSlots(v uint64) (idle, busy int) {
	return int(uint32(v)), int(v >> 32)
}

// closeCounted closes c, whose slot is counted in nClosing, then frees the
// slot (letting a waiter dial).
//
// c is at a clean point (idle, or released healthy): a connection that
// can say goodbye (Terminator) does, and waits for the server to end, so
// that the slot is freed only once the server no longer counts it.
func (p *Pool[C]) closeCounted(c C) {
	if t, ok := any(c).(Terminator); ok {
		_ = t.Terminate()
	} else {
		_ = c.Close()
	}
	p.mu.Lock()
	p.nClosing.Add(-1)
	p.retiredLocked(c)
	p.grantLocked()
	p.mu.Unlock()
}

// putLocked takes back c, counted as busy; now and created are zero unless
// Release stamps times (see Config.timed). If it reports closeIt, c's slot
// was moved to nClosing and the caller must call closeCounted(c) after
// unlocking.
func (p *Pool[C]) putLocked(c C, now, created time.Time) (closeIt bool) {
	expired := p.expiredLocked(created, now)
	if p.closed || expired || p.openLocked() > p.cfg.MaxSize || p.staleLocked(c) || p.overGateLocked() {
		if expired && !p.closed {
			p.recycled.Add(1)
		}
		p.addSlots(0, -1)
		p.nClosing.Add(1)
		p.drainedLocked()
		return true
	}
	if !p.hold.paused {
		if w := p.wl.popFront(); w != nil {
			// Direct hand-off: the slot stays busy, ownership moves to w.
			p.nWaiting.Add(-1)
			w.ch <- handoff[C]{conn: c}
			return false
		}
	}
	if p.gate != nil && p.gate.starving() {
		// Another pool of the database waits for the gate: this
		// connection makes room for it rather than go idle.
		p.addSlots(0, -1)
		p.nClosing.Add(1)
		p.drainedLocked()
		return true
	}
	p.idle = append(p.idle, idleConn[C]{conn: c, created: created, released: now, key: keyOf(c)})
	p.addSlots(1, -1)
	p.drainedLocked()
	return false
}

// grantLocked gives each free slot to the oldest waiter, which then dials
// for itself. Called whenever a slot is freed or MaxSize grows; it gives
// the gate's tokens of freed slots back first (settleLocked).
func (p *Pool[C]) grantLocked() {
	p.settleLocked()
	for !p.closed && !p.hold.paused && p.wl.len > 0 && p.openLocked() < p.cfg.MaxSize && p.takeLocked(true) {
		w := p.wl.popFront()
		p.nWaiting.Add(-1)
		p.nDialing.Add(1)
		p.borrowDials++
		w.ch <- handoff[C]{dial: true}
	}
}

// dialSlot dials on a slot already counted in nDialing and turns it into a
// busy connection, or frees it on failure. A non-zero deadline (the
// borrow's) bounds the dial through its context; the context and its
// timer live only as long as the dial, which allocates far more anyway.
func (p *Pool[C]) dialSlot(ctx context.Context, deadline time.Time) (C, error) {
	var zero C
	if err := ctx.Err(); err != nil {
		// Do not count an abandoned request as a dial failure.
		p.freeDialSlot()
		return zero, err
	}
	if !deadline.IsZero() {
		if !time.Now().Before(deadline) {
			// Granted a slot as the borrow's time ran out: nothing left
			// to dial with.
			p.mu.Lock()
			p.nDialing.Add(-1)
			p.borrowDials--
			p.drainedLocked()
			err := p.timeoutLocked()
			p.grantLocked()
			p.mu.Unlock()
			return zero, err
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	c, err := p.dial(ctx)
	p.mu.Lock()
	p.nDialing.Add(-1)
	p.borrowDials--
	p.noteDialLocked(err)
	p.dialedLocked(c, err)
	if err != nil && !deadline.IsZero() && p.lastDialErr != nil && !isTimeout(p.lastDialErr) &&
		(errors.Is(err, context.DeadlineExceeded) || isTimeout(err) && ctx.Err() != nil) {
		// The borrow's deadline cut this dial short before the server
		// answered (a waiter granted the slot with little time left, or
		// a slow machine): what the server said to the dials before it
		// tells the client more than "i/o timeout".
		err = &UnreachableError{Last: p.lastDialErr}
	}
	if err != nil {
		p.dialFailures.Add(1)
		p.drainedLocked()
		p.grantLocked()
		p.mu.Unlock()
		return zero, err
	}
	p.dials.Add(1)
	if p.closed {
		p.nClosing.Add(1) // counted until closed: the gate's token with it
		p.mu.Unlock()
		p.closeCounted(c)
		return zero, ErrClosed
	}
	p.addSlots(0, 1)
	p.mu.Unlock()
	return c, nil
}

// freeDialSlot gives up a dial permission received too late to be used.
func (p *Pool[C]) freeDialSlot() {
	p.mu.Lock()
	p.nDialing.Add(-1)
	p.borrowDials--
	p.drainedLocked()
	p.grantLocked()
	p.mu.Unlock()
}
