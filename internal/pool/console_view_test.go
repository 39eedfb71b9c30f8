package pool

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// OldestWait is when the head of the queue queued (SHOW POOLS' maxwait):
// zero with nobody waiting, the first waiter's time while it waits, the
// next one's once the first is served, and zero again when the queue is
// empty.
func TestOldestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		a := acquire(t, p)
		require.True(t, p.OldestWait().IsZero(), "nobody waits")
		first := time.Now()
		got1 := goAcquire(context.Background(), p)
		synctest.Wait()
		time.Sleep(3 * time.Second)
		got2 := goAcquire(context.Background(), p)
		synctest.Wait()
		require.Equal(t, first, p.OldestWait(), "the head of the queue")
		second := time.Now()

		p.Release(a)
		r := <-got1
		require.NoError(t, r.err)
		require.Equal(t, second, p.OldestWait(), "the next waiter is the oldest now")
		p.Release(r.c)
		r = <-got2
		require.NoError(t, r.err)
		require.True(t, p.OldestWait().IsZero())
		p.Release(r.c)
		p.Close()
	})
}

// Retired (SHOW SERVERS' close_needed) is true of a connection as old
// as the last Reconnect, the pool's own or one held outside it, and
// false of one opened after it.
func TestRetiredReportsConnectionsOlderThanReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 2, BorrowTimeout: time.Hour}, d)
		busy := acquire(t, p)
		outside := &fakeConn{created: time.Now()}
		require.False(t, p.Retired(busy), "no Reconnect yet")
		time.Sleep(time.Second)
		p.Reconnect()
		require.True(t, p.Retired(busy))
		require.True(t, p.Retired(outside), "a connection held outside the pool, as old")
		time.Sleep(time.Second)
		fresh := acquire(t, p)
		require.False(t, p.Retired(fresh), "opened after the Reconnect")
		p.Release(busy)
		p.Release(fresh)
		require.Equal(t, 0, p.Retiring(), "the retired connection was closed when released")
		p.Close()
	})
}
