package pool

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Tests in this file run in synctest bubbles: time is virtual and
// synctest.Wait returns once every goroutine in the bubble is blocked, so
// "the waiter is queued" is an observable state rather than a sleep.

type result struct {
	c   *fakeConn
	err error
}

func goAcquire(ctx context.Context, p *Pool[*fakeConn]) <-chan result {
	ch := make(chan result, 1)
	go func() {
		c, err := p.Acquire(ctx)
		ch <- result{c, err}
	}()
	return ch
}

func TestWaitAndDirectHandOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)
		got := goAcquire(context.Background(), p)
		synctest.Wait()
		require.Equal(t, Stats{Busy: 1, Waiting: 1, Dials: 1}, p.Stats())

		start := time.Now()
		p.Release(a)
		r := <-got
		require.NoError(t, r.err)
		require.Same(t, a, r.c)
		require.Equal(t, start, time.Now(), "hand-off is immediate")
		require.Equal(t, Stats{Busy: 1, Dials: 1}, p.Stats(), "never went through idle")
		p.Release(a)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestWaitersServedFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)

		var (
			mu    sync.Mutex
			order []int
			wg    sync.WaitGroup
		)
		waiter := func(id int) {
			defer wg.Done()
			c, err := p.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, id)
			mu.Unlock()
			time.Sleep(time.Millisecond) // hold it a (virtual) moment
			p.Release(c)
		}
		const n = 8
		for i := range n {
			wg.Add(1)
			go waiter(i)
			synctest.Wait() // i is queued before i+1 arrives
		}
		require.Equal(t, n, p.Stats().Waiting)
		p.Release(a)
		// A newcomer arriving now must queue behind all of them.
		wg.Add(1)
		go waiter(n)
		wg.Wait()
		require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, order)
		require.Equal(t, Stats{Idle: 1, Dials: 1}, p.Stats())
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestBorrowTimeoutExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		const bt = 250 * time.Millisecond
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: bt}, d)
		a := acquire(t, p)
		start := time.Now()
		_, err := p.Acquire(context.Background())
		require.ErrorIs(t, err, ErrExhausted)
		require.Equal(t, bt, time.Since(start))
		require.Equal(t, Stats{Busy: 1, Dials: 1, Timeouts: 1}, p.Stats())

		// The timed-out waiter left the queue: the release goes idle.
		p.Release(a)
		require.Equal(t, Stats{Idle: 1, Dials: 1, Timeouts: 1}, p.Stats())
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestTimedOutWaiterDoesNotBlockOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Second}, d)
		a := acquire(t, p)
		first := goAcquire(context.Background(), p)
		time.Sleep(500 * time.Millisecond)
		second := goAcquire(context.Background(), p)
		time.Sleep(600 * time.Millisecond) // first timed out at 1s
		require.ErrorIs(t, (<-first).err, ErrExhausted)
		require.Equal(t, 1, p.Stats().Waiting)
		p.Release(a)
		r := <-second
		require.NoError(t, r.err)
		require.Same(t, a, r.c)
		p.Release(a)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestContextCancelRemovesWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := p.Acquire(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, time.Second, time.Since(start))
		require.Equal(t, Stats{Busy: 1, Dials: 1}, p.Stats(), "ctx expiry is not a pool timeout")
		p.Release(a)
		require.Equal(t, 1, p.Stats().Idle)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestDialFailureWakesWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		gate := make(chan struct{})
		d := &fakeDialer{hook: func(_ context.Context, n int) error {
			if n == 1 {
				<-gate
				return boom
			}
			return nil
		}}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		dialer := goAcquire(context.Background(), p)
		synctest.Wait()
		require.Equal(t, Stats{Dialing: 1}, p.Stats())
		waiter := goAcquire(context.Background(), p)
		synctest.Wait()
		require.Equal(t, Stats{Dialing: 1, Waiting: 1}, p.Stats())
		require.EqualValues(t, 1, d.maxOpen.Load())

		close(gate)
		require.ErrorIs(t, (<-dialer).err, boom)
		r := <-waiter
		require.NoError(t, r.err, "the freed slot let the waiter dial")
		require.Equal(t, Stats{Busy: 1, Dials: 1, DialFailures: 1}, p.Stats())
		p.Release(r.c)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestDeadHandOffIsReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)
		got := goAcquire(context.Background(), p)
		synctest.Wait()
		next := goAcquire(context.Background(), p)
		synctest.Wait()
		a.dead.Store(true)
		p.Release(a)
		// The first waiter was served (with a dead connection): it keeps
		// the slot and dials a replacement ahead of the second waiter.
		r := <-got
		require.NoError(t, r.err)
		require.NotSame(t, a, r.c)
		require.EqualValues(t, 1, a.closes.Load())
		require.EqualValues(t, 1, d.maxOpen.Load())
		require.Equal(t, Stats{Busy: 1, Waiting: 1, Dials: 2, DeadRemoved: 1}, p.Stats())
		p.Release(r.c)
		r2 := <-next
		require.NoError(t, r2.err)
		require.Same(t, r.c, r2.c)
		p.Release(r2.c)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestResizeUpWakesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)
		w1 := goAcquire(context.Background(), p)
		synctest.Wait()
		w2 := goAcquire(context.Background(), p)
		synctest.Wait()
		p.Resize(Config{MaxSize: 3, BorrowTimeout: time.Hour})
		r1, r2 := <-w1, <-w2
		require.NoError(t, r1.err)
		require.NoError(t, r2.err)
		require.Equal(t, Stats{Busy: 3, Dials: 3}, p.Stats())
		for _, c := range []*fakeConn{a, r1.c, r2.c} {
			p.Release(c)
		}
		p.Close()
		requireAllClosedOnce(t, d)
	})
}

func TestCloseFailsWaitersAndInFlightDials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		d := &fakeDialer{hook: func(_ context.Context, n int) error {
			if n == 2 {
				<-gate
			}
			return nil
		}}
		p := newTestPool(Config{MaxSize: 2, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)
		dialing := goAcquire(context.Background(), p)
		synctest.Wait()
		waiters := []<-chan result{goAcquire(context.Background(), p), goAcquire(context.Background(), p)}
		synctest.Wait()
		require.Equal(t, Stats{Busy: 1, Dialing: 1, Waiting: 2, Dials: 1}, p.Stats())

		p.Close()
		for _, w := range waiters {
			require.ErrorIs(t, (<-w).err, ErrClosed)
		}
		close(gate)
		require.ErrorIs(t, (<-dialing).err, ErrClosed, "dial completing after Close is closed")
		p.Release(a)
		require.Equal(t, Stats{Dials: 2}, p.Stats())
		requireAllClosedOnce(t, d)
	})
}

func TestMaintain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		d := &fakeDialer{hook: func(_ context.Context, n int) error {
			if n == 2 {
				return boom
			}
			return nil
		}}
		p := newTestPool(Config{MinSize: 2, MaxSize: 4, HealthCheckPeriod: time.Second}, d)
		ctx, cancel := context.WithCancel(context.Background())
		var errs []error
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Maintain(ctx, func(err error) { errs = append(errs, err) })
		}()
		synctest.Wait()
		require.Equal(t, Stats{Idle: 1, Dials: 1, DialFailures: 1}, p.Stats())
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, Stats{Idle: 2, Dials: 2, DialFailures: 1}, p.Stats())

		c := acquire(t, p)
		p.Discard(c)
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, 2, p.Stats().Idle, "replaced at the next tick")

		cancel()
		<-done
		require.Equal(t, []error{boom}, errs)

		// Maintain also stops when the pool closes.
		p.Close()
		p.Maintain(context.Background(), nil)
		requireAllClosedOnce(t, d)
	})
}
