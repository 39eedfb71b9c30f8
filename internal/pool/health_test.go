package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// idleIDs acquires every idle connection (hottest first), records the ids
// and releases them again in reverse so the stack order is unchanged.
func idleIDs(t *testing.T, p *Pool[*fakeConn]) []int {
	t.Helper()
	var cs []*fakeConn
	for range p.Stats().Idle {
		cs = append(cs, acquire(t, p))
	}
	ids := make([]int, len(cs))
	for i, c := range cs {
		ids[i] = c.id
	}
	for i := len(cs) - 1; i >= 0; i-- {
		p.Release(cs[i])
	}
	return ids
}

func TestIdleTimeoutRecyclesAndReplaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MinSize: 2, MaxSize: 4, IdleTimeout: 10 * time.Minute}, d)
		cs := []*fakeConn{acquire(t, p), acquire(t, p), acquire(t, p)}
		for _, c := range cs {
			p.Release(c)
		}
		time.Sleep(5 * time.Minute)
		require.Same(t, cs[2], acquire(t, p))
		p.Release(cs[2]) // used at 5m
		time.Sleep(5*time.Minute - 1)
		require.NoError(t, p.HealthCheck(context.Background()))
		require.Equal(t, Stats{Idle: 3, Dials: 3}, p.Stats(), "not yet idle for 10m")

		time.Sleep(1)
		require.NoError(t, p.HealthCheck(context.Background()))
		require.Equal(t, Stats{Idle: 3, Dials: 5, Recycled: 2}, p.Stats(), "two recycled, two replacements")
		require.EqualValues(t, 1, cs[0].closes.Load())
		require.EqualValues(t, 1, cs[1].closes.Load())
		require.Zero(t, cs[2].closes.Load())
		require.Equal(t, []int{5, 4, 3}, idleIDs(t, p), "replacements on top, the survivor below")

		// Nothing used for another 10m: all three recycled, and three
		// replacements (the number removed, above MinSize).
		time.Sleep(10 * time.Minute)
		require.NoError(t, p.HealthCheck(context.Background()))
		require.Equal(t, Stats{Idle: 3, Dials: 8, Recycled: 5}, p.Stats())
		require.ElementsMatch(t, []int{6, 7, 8}, idleIDs(t, p))
		require.LessOrEqual(t, d.maxOpen.Load(), int64(4))
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

// Replacements stop at MaxSize (a Resize shrank the pool meanwhile) and
// refill up to MinSize even when nothing was removed.
func TestHealthCheckReplacementBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 4, IdleTimeout: time.Minute}, d)
		cs := []*fakeConn{acquire(t, p), acquire(t, p), acquire(t, p)}
		busy := acquire(t, p)
		for _, c := range cs {
			p.Release(c)
		}
		time.Sleep(time.Minute)
		p.Resize(Config{MaxSize: 3, IdleTimeout: time.Minute})
		require.Equal(t, Stats{Idle: 2, Busy: 1, Dials: 4}, p.Stats(), "Resize trimmed one")
		require.NoError(t, p.HealthCheck(context.Background()))
		require.Equal(t, Stats{Idle: 2, Busy: 1, Dials: 6, Recycled: 2}, p.Stats(), "2 removed, 2 replaced, at MaxSize")
		p.Discard(busy)

		p.Resize(Config{MinSize: 3, MaxSize: 3})
		require.NoError(t, p.HealthCheck(context.Background()))
		require.Equal(t, Stats{Idle: 3, Dials: 7, Recycled: 2}, p.Stats(), "topped up to MinSize")
		require.LessOrEqual(t, d.maxOpen.Load(), int64(4))
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestJitterBounds(t *testing.T) {
	const d = time.Hour
	lo, hi := d, time.Duration(0)
	base := uint64(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	for i := range uint64(10000) {
		l := jitter(d, 12345^(base+i)) // creation times 1ns apart
		require.GreaterOrEqual(t, l, 54*time.Minute)
		require.Less(t, l, 66*time.Minute)
		lo, hi = min(lo, l), max(hi, l)
	}
	require.Less(t, lo, 55*time.Minute, "spread over the whole ±10%")
	require.Greater(t, hi, 65*time.Minute)
	require.Equal(t, jitter(d, 42), jitter(d, 42), "deterministic per creation time")
}

// A pool filled at once (connections created 1ms apart) expires spread
// over ±10% of MaxLifetime, each within its bounds.
func TestMaxLifetimeJitteredInPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		d := &fakeDialer{hook: func(context.Context, int) error {
			time.Sleep(time.Millisecond) // a dial takes time
			return nil
		}}
		p := newTestPool(Config{MinSize: n, MaxSize: n, MaxLifetime: time.Hour}, d)
		require.NoError(t, p.EnsureMin(context.Background()))
		first := d.all()
		require.Len(t, first, n)
		for time.Since(first[0].created) < 70*time.Minute {
			time.Sleep(30 * time.Second)
			require.NoError(t, p.HealthCheck(context.Background()))
		}
		lifetimes := map[time.Duration]bool{}
		for _, c := range first {
			require.EqualValues(t, 1, c.closes.Load(), "%v outlived 1.1h", c)
			l := time.Unix(0, c.closedAt.Load()).Sub(c.created)
			require.GreaterOrEqual(t, l, 54*time.Minute)
			require.Less(t, l, 66*time.Minute+30*time.Second+n*time.Millisecond)
			lifetimes[l.Truncate(30*time.Second)] = true
		}
		require.Greater(t, len(lifetimes), 3, "not all expired at once")
		require.Equal(t, n, p.Stats().Idle, "every expired one replaced")
		require.GreaterOrEqual(t, p.Stats().Recycled, uint64(n))
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestBusyUntouchedThenClosedOnRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		var probed atomic.Int32
		p := New(Config{MaxSize: 1, BorrowTimeout: 3 * time.Hour, IdleTimeout: time.Minute, MaxLifetime: time.Hour},
			d.dial, func(c *fakeConn) bool { probed.Add(1); return alive(c) })
		a := acquire(t, p)
		a.dead.Store(true) // even dead: busy connections are the holder's
		time.Sleep(2 * time.Hour)
		require.NoError(t, p.HealthCheck(context.Background()))
		require.Zero(t, a.closes.Load())
		require.Zero(t, probed.Load())
		require.Equal(t, Stats{Busy: 1, Dials: 1}, p.Stats())

		a.dead.Store(false)
		got := goAcquire(context.Background(), p)
		synctest.Wait()
		p.Release(a) // past its lifetime: closed, and the waiter dials
		require.EqualValues(t, 1, a.closes.Load())
		r := <-got
		require.NoError(t, r.err)
		require.NotSame(t, a, r.c)
		require.Equal(t, Stats{Busy: 1, Dials: 2, Recycled: 1}, p.Stats())
		require.EqualValues(t, 1, d.maxOpen.Load())

		p.Release(r.c) // young: goes idle
		require.Zero(t, r.c.closes.Load())
		require.Equal(t, Stats{Idle: 1, Dials: 2, Recycled: 1}, p.Stats())
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestHealthCheckReplacesDeadIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MinSize: 3, MaxSize: 4}, d)
		require.NoError(t, p.EnsureMin(context.Background()))
		cs := d.all()
		cs[1].dead.Store(true)
		require.NoError(t, p.HealthCheck(context.Background()))
		require.EqualValues(t, 1, cs[1].closes.Load())
		require.Equal(t, Stats{Idle: 3, Dials: 4, DeadRemoved: 1}, p.Stats())
		require.Equal(t, []int{4, 3, 1}, idleIDs(t, p), "survivors keep their order")
		require.EqualValues(t, 1, p.Stats().DeadRemoved, "Acquire found none dead")
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

// While HealthCheck probes the idle connections, an Acquire that finds
// none waits for the probe instead of failing (BorrowTimeout 0) or
// dialling; Close during a probe closes the probed connections after it.
func TestProbeDoesNotStarveAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		gate := make(chan struct{})
		p := New(Config{MinSize: 1, MaxSize: 1}, d.dial, func(c *fakeConn) bool { <-gate; return alive(c) })
		require.NoError(t, p.EnsureMin(context.Background()))
		checked := make(chan error, 1)
		go func() { checked <- p.HealthCheck(context.Background()) }()
		synctest.Wait()
		require.Equal(t, Stats{Idle: 1, Dials: 1}, p.Stats(), "a probed connection still counts as idle")
		got := goAcquire(context.Background(), p)
		synctest.Wait()
		close(gate)
		r := <-got
		require.NoError(t, r.err)
		require.Same(t, d.all()[0], r.c)
		require.NoError(t, <-checked)
		require.Equal(t, Stats{Busy: 1, Dials: 1}, p.Stats())
		p.Release(r.c)
		p.Close()
		requireAllClosedOnce(t, d)
	})
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		gate := make(chan struct{})
		p := New(Config{MinSize: 1, MaxSize: 1}, d.dial, func(c *fakeConn) bool { <-gate; return true })
		require.NoError(t, p.EnsureMin(context.Background()))
		checked := make(chan error, 1)
		go func() { checked <- p.HealthCheck(context.Background()) }()
		synctest.Wait()
		got := goAcquire(context.Background(), p)
		synctest.Wait()
		p.Close()
		require.ErrorIs(t, (<-got).err, ErrClosed, "Close wakes an Acquire waiting for the probe")
		require.Zero(t, d.all()[0].closes.Load(), "being probed: not closed under the prober")
		close(gate)
		require.ErrorIs(t, <-checked, ErrClosed)
		requireAllClosedOnce(t, d)
	})
}

// Timeouts enabled by Resize count from the first pass that sees an idle
// connection released while no timeout was configured.
func TestTimeoutsEnabledByResize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 2}, d)
		p.Release(acquire(t, p))
		time.Sleep(time.Hour)
		p.Resize(Config{MaxSize: 2, IdleTimeout: time.Minute})
		require.NoError(t, p.HealthCheck(context.Background()))
		require.Equal(t, Stats{Idle: 1, Dials: 1}, p.Stats())
		time.Sleep(time.Minute)
		require.NoError(t, p.HealthCheck(context.Background()))
		require.Equal(t, Stats{Idle: 1, Dials: 2, Recycled: 1}, p.Stats())
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

// Maintain runs a pass at once and then every HealthCheckPeriod; a Resize
// of the period takes effect at once; period 0 stops the passes; it
// returns when ctx is cancelled.
func TestMaintainPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		var passes atomic.Int32 // one idle connection: one probe per pass
		cfg := Config{MinSize: 1, MaxSize: 1, HealthCheckPeriod: time.Minute}
		p := New(cfg, d.dial, func(c *fakeConn) bool { passes.Add(1); return true })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Maintain(ctx, func(err error) { t.Errorf("unexpected error %v", err) })
		}()
		synctest.Wait()
		require.Equal(t, Stats{Idle: 1, Dials: 1}, p.Stats(), "first pass at once filled the pool")
		require.Zero(t, passes.Load())
		start := time.Now()
		for i := int32(1); i <= 3; i++ {
			time.Sleep(time.Minute - 1)
			synctest.Wait()
			require.Equal(t, i-1, passes.Load(), "no pass before the period")
			time.Sleep(1)
			synctest.Wait()
			require.Equal(t, i, passes.Load(), "pass at %v", time.Since(start))
		}

		time.Sleep(30 * time.Second)
		cfg.HealthCheckPeriod = 10 * time.Second
		p.Resize(cfg)
		time.Sleep(10*time.Second - 1)
		synctest.Wait()
		require.EqualValues(t, 3, passes.Load())
		time.Sleep(1)
		synctest.Wait()
		require.EqualValues(t, 4, passes.Load(), "new period counted from the Resize")

		cfg.HealthCheckPeriod = 0
		p.Resize(cfg)
		time.Sleep(time.Hour)
		synctest.Wait()
		require.EqualValues(t, 4, passes.Load(), "period 0: no more passes")

		cancel()
		<-done
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

// Connections released while a probe runs were used more recently than
// the probed ones, so the probed ones go back beneath them (LIFO order by
// last use is what lets IdleTimeout trim the cold end).
func TestProbedGoBackBeneathReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		gate := make(chan struct{})
		p := New(Config{MaxSize: 3}, d.dial, func(c *fakeConn) bool { <-gate; return true })
		close(gate)
		a, b, c := acquire(t, p), acquire(t, p), acquire(t, p)
		p.Release(a)
		p.Release(b)
		gate = make(chan struct{})
		checked := make(chan error, 1)
		go func() { checked <- p.HealthCheck(context.Background()) }()
		synctest.Wait()
		p.Release(c)
		close(gate)
		require.NoError(t, <-checked)
		require.Equal(t, []int{c.id, b.id, a.id}, idleIDs(t, p))
		p.Close()
		requireAllClosedOnce(t, d)
	})
}
