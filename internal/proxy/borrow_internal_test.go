package proxy

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/pool"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// noProbes is a Prober for a monitor that is never run.
type noProbes struct{}

func (noProbes) Probe(context.Context, topology.Host) (topology.Observation, error) {
	return topology.Observation{}, errors.New("not probed")
}
func (noProbes) Promote(context.Context, topology.Host) error { return errors.New("not promoted") }

// During a failover with no primary, a client that first waited in the
// pool's queue and then, given a slot, waits for a primary, waits
// borrow_timeout in all, not borrow_timeout twice (today's main gave the
// primary wait a borrow_timeout of its own).
func TestBorrowTimeoutBoundsPoolWaitAndPrimaryWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bt = 10 * time.Second
		mon, err := topology.New(topology.Config{Database: "appdb", Prober: noProbes{},
			Hosts: []topology.Host{{Name: "db1:5432", Network: "tcp", Address: "db1:5432"}, {Name: "db2:5432", Network: "tcp", Address: "db2:5432"}}})
		require.NoError(t, err)
		db := &config.Database{Name: "appdb", Pool: config.Pool{MaxSize: 1, BorrowTimeout: config.Duration(bt)}}
		e := &poolEntry{key: poolKey{"appdb", "app"}, topo: &dbTopology{name: "appdb", mon: mon}}
		e.opts.Store(&backend.Options{User: "app", Database: "appdb"})
		e.db.Store(db)
		e.pool = pool.New(poolConfig(db), e.dial, nil)
		defer e.pool.Close()

		type result struct {
			err     error
			elapsed time.Duration
		}
		borrow := func() <-chan result {
			ch := make(chan result, 1)
			go func() {
				start := time.Now()
				_, err := e.acquire(context.Background())
				ch <- result{err, time.Since(start)}
			}()
			return ch
		}
		first := borrow() // takes the only slot and waits for a primary
		synctest.Wait()
		time.Sleep(4 * time.Second)
		second := borrow() // queues for the slot
		synctest.Wait()
		require.Equal(t, 1, e.pool.Stats().Waiting)

		r1 := <-first
		var np *errNoPrimary
		require.ErrorAs(t, r1.err, &np)
		require.Equal(t, bt, r1.elapsed)
		r2 := <-second
		require.ErrorAs(t, r2.err, &np, "6s in the queue, then 4s waiting for a primary")
		require.Equal(t, bt, r2.elapsed)
		require.Contains(t, r2.err.Error(), "pool.borrow_timeout (10s)")
	})
}
