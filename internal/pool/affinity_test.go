package pool

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func acquireFor(t *testing.T, p *Pool[*fakeConn], key uint64, exact bool) *fakeConn {
	t.Helper()
	ctx := context.WithValue(context.Background(), settingsKeyCtx{}, key)
	c, err := p.AcquireFor(ctx, &Deadline{}, Affinity{Key: key, Exact: exact})
	require.NoError(t, err)
	return c
}

// An Acquire with affinity takes the most recently released connection
// opened with its key, even below others on the idle stack, and dials
// one with its key while the pool has room rather than take another's.
func TestAffinityPrefersMatchingIdle(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 4}, d)
	a1, b1, a2 := acquireFor(t, p, 1, false), acquireFor(t, p, 2, false), acquireFor(t, p, 1, false)
	p.Release(a1)
	p.Release(a2)
	p.Release(b1) // stack, top first: b1, a2, a1
	require.Same(t, a2, acquireFor(t, p, 1, false), "the hottest with key 1, below b1")
	require.Same(t, a1, acquireFor(t, p, 1, false))
	c := acquireFor(t, p, 3, false)
	require.EqualValues(t, 3, c.key, "room left: dialled with the caller's key, b1 stays idle")
	require.EqualValues(t, 4, p.Stats().Dials)
	require.Same(t, b1, acquire(t, p), "without affinity any connection does")
	for _, x := range []*fakeConn{a1, a2, b1, c} {
		p.Release(x)
	}
	require.Zero(t, p.Stats().Replaced)
	p.Close()
	requireAllClosedOnce(t, d)
}

// A full pool without a matching idle connection: without Exact the
// hottest other one is handed out (the caller applies settings); with
// Exact the coldest is closed and a connection with the key is dialled
// on its slot, never exceeding MaxSize.
func TestAffinityFullPool(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 2}, d)
	a, b := acquireFor(t, p, 1, false), acquireFor(t, p, 2, false)
	p.Release(a)
	p.Release(b)
	require.Same(t, b, acquireFor(t, p, 3, false), "not exact: the hottest")
	p.Release(b)

	c := acquireFor(t, p, 3, true)
	require.EqualValues(t, 3, c.key)
	require.EqualValues(t, 1, a.closes.Load(), "the coldest (a) was replaced")
	require.Zero(t, b.closes.Load())
	require.EqualValues(t, 2, d.maxOpen.Load(), "max never exceeded")
	require.Equal(t, Stats{Idle: 1, Busy: 1, Dials: 3, Replaced: 1}, p.Stats())
	p.Release(c)
	p.Close()
	requireAllClosedOnce(t, d)
}

// A waiter with Exact affinity that is handed another key's connection
// closes it and dials its own on the slot; FIFO hand-off is kept.
func TestAffinityExactWaiterReplacesHandoff(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Minute}, d)
	a := acquireFor(t, p, 1, true)
	got := make(chan *fakeConn)
	go func() {
		ctx := context.WithValue(context.Background(), settingsKeyCtx{}, uint64(2))
		c, err := p.AcquireFor(ctx, &Deadline{}, Affinity{Key: 2, Exact: true})
		if err != nil {
			panic(err)
		}
		got <- c
	}()
	for p.Stats().Waiting == 0 {
		time.Sleep(time.Millisecond) // waits on a condition, not a duration
	}
	p.Release(a)
	c := <-got
	require.EqualValues(t, 2, c.key)
	require.EqualValues(t, 1, a.closes.Load())
	require.EqualValues(t, 1, d.maxOpen.Load())
	require.EqualValues(t, 1, p.Stats().Replaced)
	p.Release(c)
	p.Close()
	requireAllClosedOnce(t, d)
}
