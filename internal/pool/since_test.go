package pool

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Deadline.Since is when a borrow first had to wait or dial, what its
// wait is measured from (sluice_pool_wait_seconds): zero for a borrow
// that took an idle connection, which so reads no clock; the start of
// the queue wait for one that waited, kept across acquisitions; and set
// for a dial even with BorrowTimeout 0, where the deadline stays unfixed.
func TestDeadlineSince(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: time.Hour}, d)
		var dl Deadline
		c, err := p.AcquireWithin(context.Background(), &dl)
		require.NoError(t, err)
		require.Equal(t, time.Now(), dl.Since(), "a dial starts the wait")
		p.Release(c)

		var idle Deadline
		c, err = p.AcquireWithin(context.Background(), &idle)
		require.NoError(t, err)
		require.True(t, idle.Since().IsZero(), "an idle connection: no wait")

		queued := time.Now()
		var w Deadline
		got := make(chan *fakeConn, 1)
		go func() {
			c, err := p.AcquireWithin(context.Background(), &w)
			require.NoError(t, err)
			got <- c
		}()
		synctest.Wait()
		time.Sleep(3 * time.Second) // virtual time: the queued borrow waits exactly this long
		p.Release(c)
		c = <-got
		require.Equal(t, queued, w.Since())
		require.Equal(t, queued.Add(time.Hour), w.At())
		require.Equal(t, 3*time.Second, time.Since(w.Since()))
		p.Release(c)

		p.Resize(Config{MaxSize: 2, BorrowTimeout: 0})
		c1, c2 := acquire(t, p), (*fakeConn)(nil)
		var z Deadline
		c2, err = p.AcquireWithin(context.Background(), &z)
		require.NoError(t, err)
		require.Equal(t, time.Now(), z.Since(), "a dial with BorrowTimeout 0")
		require.True(t, z.At().IsZero())
		p.Release(c1)
		p.Release(c2)
		p.Close()
		requireAllClosedOnce(t, d)
	})
}
