package pool

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests force a hand-off to race with a waiter giving up: the waiter
// has already woken (on ctx or BorrowTimeout) when Release/Discard unlinks
// it and sends. testHookWoke parks the waiter between the two moments.

// A hand-off that races with ctx cancellation: the waiter has woken up on
// ctx.Done but Release already unlinked it and sent the connection. The
// waiter must give it back (no leak) and report the cancellation.
func TestHandOffRacingCancelIsReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)
		woke, proceed := make(chan struct{}), make(chan struct{})
		p.testHookWoke = func() { woke <- struct{}{}; <-proceed }
		ctx, cancel := context.WithCancel(context.Background())
		got := goAcquire(ctx, p)
		synctest.Wait()
		cancel()
		<-woke
		p.Release(a) // waiter still queued: hand-off goes to it
		close(proceed)
		r := <-got
		require.ErrorIs(t, r.err, context.Canceled)
		require.Equal(t, Stats{Idle: 1, Dials: 1}, p.Stats())
		require.Zero(t, a.closes.Load())
		require.Same(t, a, acquire(t, p))
		p.Release(a)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

// A hand-off that races with BorrowTimeout: the pool served the waiter in
// time, so it keeps the connection.
func TestHandOffRacingBorrowTimeoutIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Second}, d)
		a := acquire(t, p)
		woke, proceed := make(chan struct{}), make(chan struct{})
		p.testHookWoke = func() { woke <- struct{}{}; <-proceed }
		got := goAcquire(context.Background(), p)
		<-woke // timer fired
		p.Release(a)
		close(proceed)
		r := <-got
		require.NoError(t, r.err)
		require.Same(t, a, r.c)
		require.Equal(t, Stats{Busy: 1, Dials: 1}, p.Stats())
		p.Release(a)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

// A dial permission that races with cancellation is passed on to the next
// waiter instead of being lost.
func TestDialGrantRacingCancelIsPassedOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)
		woke, proceed := make(chan struct{}), make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		first := goAcquire(ctx, p)
		synctest.Wait()
		second := goAcquire(context.Background(), p)
		synctest.Wait()
		p.testHookWoke = func() { woke <- struct{}{}; <-proceed }
		cancel()
		<-woke
		p.Discard(a) // grants the slot to first, which is cancelled
		close(proceed)
		require.ErrorIs(t, (<-first).err, context.Canceled)
		r := <-second
		require.NoError(t, r.err)
		require.Equal(t, Stats{Busy: 1, Dials: 2}, p.Stats())
		p.Release(r.c)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}
