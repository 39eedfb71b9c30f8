package pool

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLIFOReuse(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 3}, d)
	a, b, c := acquire(t, p), acquire(t, p), acquire(t, p)
	require.Equal(t, Stats{Busy: 3, Dials: 3}, p.Stats())

	p.Release(a)
	p.Release(b)
	p.Release(c)
	require.Equal(t, Stats{Idle: 3, Dials: 3}, p.Stats())

	// Most recently released first.
	require.Same(t, c, acquire(t, p))
	require.Same(t, b, acquire(t, p))
	p.Release(b)
	require.Same(t, b, acquire(t, p))
	require.Same(t, a, acquire(t, p))
	require.EqualValues(t, 3, p.Stats().Dials, "no extra dial while idle connections exist")

	for _, x := range []*fakeConn{a, b, c} {
		p.Release(x)
	}
	p.Close()
	requireAllClosedOnce(t, d)
}

func TestExhaustedAtOnceWithZeroTimeout(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 2}, d)
	a, b := acquire(t, p), acquire(t, p)

	_, err := p.Acquire(context.Background())
	require.ErrorIs(t, err, ErrExhausted)
	require.Equal(t, Stats{Busy: 2, Dials: 2, Timeouts: 1}, p.Stats())
	require.EqualValues(t, 2, d.maxOpen.Load(), "max never exceeded")

	p.Release(a)
	require.Same(t, a, acquire(t, p))
	p.Release(a)
	p.Release(b)
	p.Close()
	requireAllClosedOnce(t, d)
}

func TestDeadIdleSkippedAndClosed(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 3}, d)
	a, b := acquire(t, p), acquire(t, p)
	p.Release(a)
	p.Release(b)

	b.dead.Store(true) // top of the stack
	require.Same(t, a, acquire(t, p))
	require.EqualValues(t, 1, b.closes.Load(), "dead idle connection is closed")
	require.Equal(t, Stats{Busy: 1, Dials: 2, DeadRemoved: 1}, p.Stats())

	// Every idle connection dead: replaced by a dial on the same slot.
	a.dead.Store(true)
	p.Release(a)
	c := acquire(t, p)
	require.NotSame(t, a, c)
	require.EqualValues(t, 1, a.closes.Load())
	require.Equal(t, Stats{Busy: 1, Dials: 3, DeadRemoved: 2}, p.Stats())

	p.Release(c)
	p.Close()
	requireAllClosedOnce(t, d)
}

func TestDeadIdleReplacedWhenFull(t *testing.T) {
	// MaxSize 1: the dead connection's slot is the only one, and the
	// replacement must reuse it rather than report ErrExhausted.
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 1}, d)
	a := acquire(t, p)
	a.dead.Store(true)
	p.Release(a)
	b := acquire(t, p)
	require.NotSame(t, a, b)
	require.EqualValues(t, 1, d.maxOpen.Load())
	p.Release(b)
	p.Close()
	requireAllClosedOnce(t, d)
}

func TestDialFailureReturnedAndSlotFreed(t *testing.T) {
	boom := errors.New("boom")
	d := &fakeDialer{hook: func(_ context.Context, n int) error {
		if n == 1 {
			return boom
		}
		return nil
	}}
	p := newTestPool(Config{MaxSize: 1}, d)
	_, err := p.Acquire(context.Background())
	require.ErrorIs(t, err, boom)
	require.Equal(t, Stats{DialFailures: 1}, p.Stats())

	c := acquire(t, p) // the slot was freed
	require.Equal(t, Stats{Busy: 1, Dials: 1, DialFailures: 1}, p.Stats())
	p.Release(c)
	p.Close()
	requireAllClosedOnce(t, d)
}

func TestCancelledContextDoesNotDial(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 1}, d)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Acquire(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, Stats{}, p.Stats())
	p.Close()
}

func TestDiscardFreesSlot(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 1}, d)
	a := acquire(t, p)
	p.Discard(a)
	require.EqualValues(t, 1, a.closes.Load())
	require.Equal(t, Stats{Dials: 1}, p.Stats())
	b := acquire(t, p)
	require.NotSame(t, a, b)
	p.Release(b)
	p.Close()
	requireAllClosedOnce(t, d)
}

func TestResizeDownClosesColdestIdle(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 4}, d)
	cs := []*fakeConn{acquire(t, p), acquire(t, p), acquire(t, p), acquire(t, p)}
	for _, c := range cs {
		p.Release(c) // cs[3] is the hottest
	}
	p.Resize(Config{MaxSize: 2})
	require.Equal(t, Stats{Idle: 2, Dials: 4}, p.Stats())
	require.EqualValues(t, 1, cs[0].closes.Load())
	require.EqualValues(t, 1, cs[1].closes.Load())
	require.Same(t, cs[3], acquire(t, p))
	require.Same(t, cs[2], acquire(t, p))
	_, err := p.Acquire(context.Background())
	require.ErrorIs(t, err, ErrExhausted)

	// Shrink below the busy count: releases close until back under MaxSize.
	p.Resize(Config{MaxSize: 1})
	p.Release(cs[3])
	require.EqualValues(t, 1, cs[3].closes.Load(), "over MaxSize: closed on release")
	p.Release(cs[2])
	require.Zero(t, cs[2].closes.Load())
	require.Equal(t, Stats{Idle: 1, Dials: 4, Timeouts: 1}, p.Stats())

	// Grow again: new slots can be dialled.
	p.Resize(Config{MaxSize: 3})
	x, y, z := acquire(t, p), acquire(t, p), acquire(t, p)
	require.Same(t, cs[2], x)
	require.EqualValues(t, 6, p.Stats().Dials)
	for _, c := range []*fakeConn{x, y, z} {
		p.Release(c)
	}
	require.Equal(t, 3, p.Config().MaxSize)
	p.Close()
	requireAllClosedOnce(t, d)
}

func TestConfigNormalised(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MinSize: 9, MaxSize: -3, BorrowTimeout: -1}, d)
	require.Equal(t, Config{MinSize: 1, MaxSize: 1}, p.Config())
	p.Resize(Config{MinSize: -1, MaxSize: math.MaxInt})
	require.Equal(t, Config{MinSize: 0, MaxSize: math.MaxInt32}, p.Config())
	p.Resize(Config{MinSize: -1, MaxSize: 0})
	require.Equal(t, Config{MinSize: 0, MaxSize: 1}, p.Config())
	c := acquire(t, p)
	_, err := p.Acquire(context.Background())
	require.ErrorIs(t, err, ErrExhausted)
	p.Release(c)
	p.Close()
	requireAllClosedOnce(t, d)
}

func TestEnsureMin(t *testing.T) {
	boom := errors.New("boom")
	var failAt int
	d := &fakeDialer{}
	d.hook = func(_ context.Context, n int) error {
		if n == failAt {
			return boom
		}
		return nil
	}
	p := newTestPool(Config{MinSize: 3, MaxSize: 5}, d)
	require.NoError(t, p.EnsureMin(context.Background()))
	require.Equal(t, Stats{Idle: 3, Dials: 3}, p.Stats())
	require.NoError(t, p.EnsureMin(context.Background()))
	require.EqualValues(t, 3, p.Stats().Dials, "already at MinSize: no dial")

	// Busy connections count towards MinSize.
	a, b := acquire(t, p), acquire(t, p)
	require.NoError(t, p.EnsureMin(context.Background()))
	require.EqualValues(t, 3, p.Stats().Dials)
	p.Discard(a)
	p.Discard(b)

	// Two missing; the second dial fails and its error is returned.
	failAt = 5
	require.ErrorIs(t, p.EnsureMin(context.Background()), boom)
	require.Equal(t, Stats{Idle: 2, Dials: 4, DialFailures: 1}, p.Stats())
	require.NoError(t, p.EnsureMin(context.Background()))
	require.Equal(t, Stats{Idle: 3, Dials: 5, DialFailures: 1}, p.Stats())

	p.Close()
	require.ErrorIs(t, p.EnsureMin(context.Background()), ErrClosed)
	requireAllClosedOnce(t, d)
}

func TestCloseIdempotentAndAcquireFails(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 2}, d)
	a, b := acquire(t, p), acquire(t, p)
	p.Release(a)
	p.Close()
	p.Close()
	require.EqualValues(t, 1, a.closes.Load(), "idle closed at once")
	require.Zero(t, b.closes.Load(), "busy connection left to its holder")
	_, err := p.Acquire(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	p.Release(b)
	require.EqualValues(t, 1, b.closes.Load(), "busy connection closed on release")
	require.Equal(t, Stats{Dials: 2}, p.Stats())
	requireAllClosedOnce(t, d)
}

func TestDiscardAfterClose(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 2}, d)
	a := acquire(t, p)
	p.Close()
	p.Discard(a)
	require.Equal(t, Stats{Dials: 1}, p.Stats())
	requireAllClosedOnce(t, d)
}
