package pool

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Health maintenance follows GatewayD: periodically close stale idle
// connections and dial the same number of new ones. "Stale" means idle for
// longer than IdleTimeout, older than the connection's MaxLifetime, or
// reported dead by alive.
//
// Bookkeeping without a map: an idle connection's stack entry carries its
// creation and last-release times. A busy connection has no entry, so on
// Release its age comes from the optional Created interface, and its
// jittered lifetime is recomputed from its creation time (a deterministic
// hash), which is why the lifetime need not be stored anywhere.

// idleConn is one idle-stack entry. Zero times mean "unknown": released is
// zero when no timeout was configured at Release (HealthCheck then starts
// counting from its own pass), created when the connection has no
// CreatedAt method and was never stamped (it never expires by age).
type idleConn[C Conn] struct {
	conn              C
	created, released time.Time
	key               uint64 // the settings key it was opened with (see Keyed)
}

// createdAt returns c's creation time if it implements Created, else zero.
func createdAt[C Conn](c C) time.Time {
	if x, ok := any(c).(Created); ok {
		return x.CreatedAt()
	}
	return time.Time{}
}

// expiredLocked reports whether a connection created at created has
// outlived its jittered MaxLifetime at now. Unknown times never expire.
func (p *Pool[C]) expiredLocked(created, now time.Time) bool {
	if p.cfg.MaxLifetime <= 0 || created.IsZero() || now.IsZero() {
		return false
	}
	return now.Sub(created) >= jitter(p.cfg.MaxLifetime, p.seed^uint64(created.UnixNano()))
}

// jitter returns d scaled by a factor in [0.9, 1.1) drawn from key: the
// splitmix64 finaliser spreads nearby keys (creation times nanoseconds
// apart) over the whole range, and the same key always gives the same
// lifetime.
func jitter(d time.Duration, key uint64) time.Duration {
	x := key + 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	u := float64(x>>11) / (1 << 53) // uniform in [0, 1)
	return time.Duration(float64(d) * (0.9 + 0.2*u))
}

// HealthCheck makes one pass over the idle connections; it never touches
// busy ones. It closes those idle for longer than IdleTimeout or past their
// lifetime (Stats.Recycled), probes the others with alive outside the lock
// and closes the dead ones (Stats.DeadRemoved), then dials as many
// replacements as it closed, topping up to MinSize and never exceeding
// MaxSize. While it probes, an Acquire that finds no idle connection waits
// for the probe (microseconds) instead of dialling. It returns ErrClosed,
// the first replacement dial error (stopping there), or nil. It runs in
// the caller's goroutine and may be called concurrently with everything
// but itself (one Maintain per pool).
func (p *Pool[C]) HealthCheck(ctx context.Context) error {
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	var stale []C
	probe := make([]idleConn[C], 0, len(p.idle)) // bottom (coldest) first
	for _, e := range p.idle {
		if e.released.IsZero() {
			e.released = now
		}
		if e.created.IsZero() {
			e.created = createdAt(e.conn)
		}
		if (p.cfg.IdleTimeout > 0 && now.Sub(e.released) >= p.cfg.IdleTimeout) || p.expiredLocked(e.created, now) {
			stale = append(stale, e.conn)
		} else {
			probe = append(probe, e)
		}
	}
	if !p.probe { // alive was nil: nothing to learn, leave them idle
		clear(p.idle[len(probe):])
		p.idle = append(p.idle[:0], probe...)
		probe = nil
	} else {
		clear(p.idle)
		p.idle = p.idle[:0]
	}
	p.addSlots(-len(stale)-len(probe), 0)
	p.nClosing.Add(int64(len(stale)))
	p.nChecking.Add(int64(len(probe)))
	p.recycled.Add(uint64(len(stale)))
	p.mu.Unlock()

	for _, c := range stale {
		p.closeCounted(c)
	}
	dead := 0
	if len(probe) > 0 {
		dead = p.probeIdle(probe)
	}
	return p.refill(ctx, len(stale)+dead)
}

// probeIdle runs alive on connections taken off the idle stack (counted in
// nChecking), closes the dead ones and puts the live ones back: the
// hottest to waiters, the rest at the bottom of the stack, beneath any
// connection released meanwhile (those are more recently used). It returns
// how many were dead.
func (p *Pool[C]) probeIdle(probe []idleConn[C]) (dead int) {
	live := probe[:0]
	for _, e := range probe {
		if p.alive(e.conn) {
			live = append(live, e)
			continue
		}
		// Still counted in nChecking: no dial can overlap this close.
		_ = e.conn.Close()
		dead++
		p.mu.Lock()
		p.retiredLocked(e.conn)
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.nChecking.Add(-int64(len(probe)))
	p.deadRemoved.Add(uint64(dead))
	var excess []C
	closed := p.closed
	if !closed && p.retire.count > 0 {
		// Reconnect ran while these were probed: close the ones it
		// retired rather than put them back.
		kept := live[:0]
		for _, e := range live {
			if p.staleLocked(e.conn) {
				p.nClosing.Add(1)
				excess = append(excess, e.conn)
				continue
			}
			kept = append(kept, e)
		}
		live = kept
	}
	if !closed {
		// Waiters cannot queue while idle connections exist or a probe
		// runs (Acquire waits on checkDone instead), except while the
		// pool is paused (and then they must not be served), so this
		// hand-off and grantLocked below are defensive: they keep the
		// pool's invariants should Acquire's strategy change.
		for len(live) > 0 && p.wl.len > 0 && !p.hold.paused {
			w := p.wl.popFront()
			p.nWaiting.Add(-1)
			p.addSlots(0, 1)
			w.ch <- handoff[C]{conn: live[len(live)-1].conn}
			live = live[:len(live)-1]
		}
		p.idle = slices.Insert(p.idle, 0, live...)
		p.addSlots(len(live), 0)
		excess = append(excess, p.trimLocked()...) // Resize may have shrunk the pool meanwhile
		p.grantLocked()
	}
	p.checkDone.Broadcast()
	p.mu.Unlock()
	if closed {
		for _, e := range live {
			_ = e.conn.Close()
		}
	}
	for _, c := range excess {
		p.closeCounted(c)
	}
	return dead
}

// Maintain runs HealthCheck (which also tops the pool up to MinSize) at
// once and then every HealthCheckPeriod until ctx is done or the pool is
// closed. A Resize that changes the period restarts the current wait with
// the new period at once; with period 0 Maintain runs no further pass
// until a Resize sets one. Errors other than ErrClosed go to onErr (which
// may be nil) and the pass is retried at the next period. Maintain blocks
// in the caller's goroutine, which the owner starts and stops (by
// cancelling ctx or closing the pool); run at most one per pool.
func (p *Pool[C]) Maintain(ctx context.Context, onErr func(error)) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		switch err := p.HealthCheck(ctx); {
		case errors.Is(err, ErrClosed):
			return
		case err != nil && ctx.Err() == nil && onErr != nil:
			onErr(err)
		}
		for waiting := true; waiting; {
			var tick <-chan time.Time
			if d := p.Config().HealthCheckPeriod; d > 0 {
				t.Reset(d) // Go ≥ 1.23: no stale tick survives Reset
				tick = t.C
			}
			select {
			case <-ctx.Done():
				return
			case <-p.done:
				return
			case <-p.reconf: // wait again with the new period
			case <-tick:
				waiting = false
			}
		}
	}
}
