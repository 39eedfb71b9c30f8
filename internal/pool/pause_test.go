package pool

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// A pause holds new borrows even with idle connections, waits for the busy
// one, does not count against BorrowTimeout, and Resume serves the held
// borrows in FIFO order.
func TestPauseHoldsBorrowsAndResumesFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 2, BorrowTimeout: time.Second}, d)
		busy := acquire(t, p)
		idle := acquire(t, p)
		p.Release(idle)

		p.Pause()
		drained := make(chan error, 1)
		go func() { drained <- p.WaitDrained(context.Background()) }()

		var got []<-chan result
		for range 3 {
			got = append(got, goAcquire(context.Background(), p))
			synctest.Wait() // queued in this order
		}
		require.Equal(t, 3, p.Stats().Waiting, "held even though one connection is idle")
		paused, isDrained := p.Paused()
		require.True(t, paused)
		require.False(t, isDrained, "one connection is still busy")

		p.Release(busy) // goes idle, not to a waiter
		require.NoError(t, <-drained)
		require.Equal(t, Stats{Idle: 2, Waiting: 3, Dials: 2}, p.Stats())

		time.Sleep(time.Hour) // far past BorrowTimeout: the pause does not count
		synctest.Wait()
		require.Equal(t, 3, p.Stats().Waiting, "nobody timed out while paused")

		p.Resume()
		first, second := <-got[0], <-got[1]
		require.NoError(t, first.err)
		require.NoError(t, second.err)
		synctest.Wait()
		require.Equal(t, 1, p.Stats().Waiting, "the third waits for a release, as usual")
		p.Release(first.c)
		third := <-got[2]
		require.NoError(t, third.err)
		require.Same(t, first.c, third.c, "direct hand-off again after Resume")
		p.Release(second.c)
		p.Release(third.c)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

// After a Resume the borrow gets what is left of its BorrowTimeout, not
// more: the pause only moved its deadline.
func TestPauseThenTimeoutAfterResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Second}, d)
		c := acquire(t, p)
		got := goAcquire(context.Background(), p)
		synctest.Wait()
		time.Sleep(400 * time.Millisecond)
		p.Pause()
		time.Sleep(time.Hour)
		p.Resume()
		start := time.Now()
		r := <-got
		require.ErrorIs(t, r.err, ErrExhausted)
		require.Equal(t, 600*time.Millisecond, time.Since(start), "only the unpaused time counted")
		p.Release(c)
		p.Close()
	})
}

func TestWaitDrainedEndsOnResumeOrContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Second}, d)
		require.ErrorIs(t, p.WaitDrained(context.Background()), ErrResumed, "not paused")
		c := acquire(t, p)
		p.Pause()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		require.ErrorIs(t, p.WaitDrained(ctx), context.DeadlineExceeded)
		cancel()
		done := make(chan error, 1)
		go func() { done <- p.WaitDrained(context.Background()) }()
		synctest.Wait()
		p.Resume()
		require.ErrorIs(t, <-done, ErrResumed)
		p.Release(c)
		p.Close()
	})
}

func TestFailWaitingWhilePaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: 0}, d)
		p.Pause()
		got := goAcquire(context.Background(), p) // BorrowTimeout 0: still held, not failed
		synctest.Wait()
		require.Equal(t, 1, p.Stats().Waiting)
		stop := errors.New("shutting down")
		p.FailWaiting(stop)
		require.ErrorIs(t, (<-got).err, stop)
		p.Close()
	})
}

// Reconnect closes idle connections at once and busy ones when released;
// WaitRetired returns when the last one is closed; new ones are reused.
func TestReconnectRetiresOpenConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 3, BorrowTimeout: time.Second}, d)
		a, b := acquire(t, p), acquire(t, p)
		p.Release(b)
		require.NoError(t, p.WaitRetired(context.Background()), "nothing to wait for")

		p.Reconnect()
		require.EqualValues(t, 1, b.closes.Load(), "idle: closed at once")
		require.Equal(t, 1, p.Retiring())
		done := make(chan error, 1)
		go func() { done <- p.WaitRetired(context.Background()) }()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("WaitRetired returned while a retired connection is busy")
		default:
		}

		time.Sleep(time.Millisecond) // new connections are younger than the mark
		c := acquire(t, p)
		require.NotSame(t, a, c)
		p.Release(a)
		require.EqualValues(t, 1, a.closes.Load(), "busy: closed when released")
		require.NoError(t, <-done)
		require.Zero(t, p.Retiring())

		p.Release(c)
		require.Same(t, c, acquire(t, p), "a new connection is reused")
		p.Release(c)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}
