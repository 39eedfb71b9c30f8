package pool

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStress hammers one pool from 64 goroutines with random discards, dead
// connections, dial failures, cancelled waits, concurrent resizes and
// health checks (idle timeout, max lifetime, probes), and checks the
// invariants: never more than the largest MaxSize connections
// open (dialing included), never one connection with two holders, never a
// closed or dead connection handed out, never a busy one closed, and
// everything closed after Close.
func TestStress(t *testing.T) {
	const (
		goroutines = 64
		iterations = 2000
		maxSize    = 8
	)
	errDial := errors.New("dial failed")
	d := &fakeDialer{hook: func(context.Context, int) error {
		if rand.IntN(100) == 0 {
			return errDial
		}
		return nil
	}}
	p := newTestPool(Config{MinSize: 2, MaxSize: maxSize, BorrowTimeout: time.Minute}, d)

	var (
		served, failed atomic.Int64
		wg             sync.WaitGroup
		stop           = make(chan struct{})
		bg             sync.WaitGroup
	)
	// Background owner activity: resizes between 4 and 8, EnsureMin and
	// health checks with timeouts short enough to fire (real time).
	bg.Add(1)
	go func() {
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p.Resize(Config{MinSize: 2, MaxSize: 4 + i%5, BorrowTimeout: time.Minute,
				IdleTimeout: 200 * time.Microsecond, MaxLifetime: time.Duration(1+i%3) * time.Millisecond})
			_ = p.EnsureMin(context.Background())
			_ = p.HealthCheck(context.Background())
			time.Sleep(100 * time.Microsecond)
		}
	}()

	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range iterations {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if rand.IntN(50) == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(50))*time.Microsecond)
				}
				c, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					if !errors.Is(err, errDial) && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("unexpected Acquire error: %v", err)
						return
					}
					failed.Add(1)
					continue
				}
				served.Add(1)
				if h := c.holders.Add(1); h != 1 {
					t.Errorf("%v has %d holders", c, h)
				}
				if c.closes.Load() != 0 || c.dead.Load() {
					t.Errorf("%v handed out closed or dead", c)
				}
				if rand.IntN(4) == 0 {
					time.Sleep(time.Duration(rand.IntN(20)) * time.Microsecond)
				}
				if c.closes.Load() != 0 {
					t.Errorf("%v closed while busy", c)
				}
				c.holders.Add(-1)
				switch r := rand.IntN(100); {
				case r < 5:
					p.Discard(c)
				case r < 7:
					c.dead.Store(true)
					p.Release(c)
				default:
					p.Release(c)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()

	require.LessOrEqual(t, d.maxOpen.Load(), int64(maxSize))
	require.EqualValues(t, goroutines*iterations, served.Load()+failed.Load())
	require.Greater(t, served.Load(), int64(goroutines*iterations/2))
	require.NotZero(t, p.Stats().Recycled, "health checks ran and recycled")
	st := p.Stats()
	require.Zero(t, st.Busy)
	require.Zero(t, st.Dialing)
	require.Zero(t, st.Waiting)
	t.Logf("served=%d failed=%d stats=%+v maxOpen=%d", served.Load(), failed.Load(), st, d.maxOpen.Load())

	p.Close()
	require.Equal(t, Stats{Dials: st.Dials, DialFailures: st.DialFailures, Timeouts: st.Timeouts, Recycled: st.Recycled, DeadRemoved: st.DeadRemoved}, p.Stats())
	requireAllClosedOnce(t, d)
	require.EqualValues(t, len(d.all()), st.Dials)
}
