package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// sleepAndEcho runs SELECT pg_sleep(secs), id and checks the row is the
// client's own; it returns the query's error.
func sleepAndEcho(ctx context.Context, c *pgconn.PgConn, secs string, id int) error {
	res := c.ExecParams(ctx, "SELECT pg_sleep("+secs+"), "+strconv.Itoa(id), nil, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	if len(res.Rows) != 1 || string(res.Rows[0][1]) != strconv.Itoa(id) {
		return fmt.Errorf("client %d got rows %q", id, res.Rows)
	}
	return nil
}

// Acceptance 6: a cancel is never delivered to a query of another client,
// even with 100 clients sending cancels that race the end of their
// queries. Every query is told apart by its client's id, and a client
// is sent cancels only in every other round: 57014 in a round in which
// nobody cancelled that client, or for a victim that is never
// cancelled, is a misrouted cancel.
func TestTxCancelsNeverHitAnotherClient(t *testing.T) {
	h := start(t, txPool(10))
	ctx := context.Background()
	stop := make(chan struct{})
	var victims sync.WaitGroup
	var victimQueries atomic.Int64
	for v := range 20 {
		c := h.connect(ctx)
		id := 1000 + v
		victims.Add(1)
		go func() {
			defer victims.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := sleepAndEcho(ctx, c, "0.02", id); err != nil {
					t.Errorf("victim %d (never sent a cancel): %v", id, err)
					return
				}
				victimQueries.Add(1)
			}
		}()
	}
	var cancellers sync.WaitGroup
	var cancelled, sentUnharmed, quiet atomic.Int64
	for i := range 100 {
		c := h.connect(ctx)
		cancellers.Add(1)
		go func() {
			defer cancellers.Done()
			for j := range 4 {
				send := (i+j)%2 == 0
				var sender sync.WaitGroup
				finished := make(chan struct{})
				if send {
					// Cancels at staggered moments until the query
					// ends: some land while it waits for a connection,
					// some while it runs, some as it finishes.
					sender.Add(1)
					go func() {
						defer sender.Done()
						pause := time.Duration(5+(i*7+j*13)%40) * time.Millisecond
						for {
							select {
							case <-finished:
								return
							case <-time.After(pause):
							}
							if err := c.CancelRequest(ctx); err != nil {
								t.Errorf("client %d: cancel request: %v", i, err)
							}
						}
					}()
				}
				err := sleepAndEcho(ctx, c, "0.1", i)
				close(finished)
				// sluice has forwarded (or dropped) the cancel once
				// CancelRequest returns: no cancel of this round is
				// still on its way when the next one starts.
				sender.Wait()
				switch {
				case send && pgCode(err) == "57014":
					cancelled.Add(1)
				case err != nil && send:
					t.Errorf("client %d round %d (cancel sent): %v", i, j, err)
				case err != nil:
					t.Errorf("client %d round %d (no cancel sent for it): %v", i, j, err)
				case send:
					sentUnharmed.Add(1)
				default:
					quiet.Add(1)
				}
			}
		}()
	}
	cancellers.Wait()
	close(stop)
	victims.Wait()
	require.Positive(t, victimQueries.Load())
	require.Positive(t, cancelled.Load(), "no cancel took effect: the test proves nothing")
	require.Equal(t, int64(200), quiet.Load(), "every round without a cancel succeeded")
	t.Logf("%d of 200 cancelled rounds cancelled (%d finished first); 200 rounds without a cancel and %d victim queries unharmed",
		cancelled.Load(), sentUnharmed.Load(), victimQueries.Load())
}

// A cancel for a client that holds no server connection (idle between
// transactions) does nothing, even to the query now running on the very
// connection that client used last. The same cancel sent for the
// running client stops it, so the first half can fail.
func TestTxCancelForIdleClientHitsNobody(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	idle, busy := h.connect(ctx), h.connect(ctx)
	monitor, err := pgconn.Connect(ctx, pgtest.Cluster(t).DSN("postgres", "", "postgres")+" host="+pgtest.Cluster(t).SocketDir)
	require.NoError(t, err)
	defer monitor.Close(ctx)
	last := query(t, idle, "SELECT pg_backend_pid()")
	require.Equal(t, byte('I'), idle.TxStatus())
	for _, canceller := range []*pgconn.PgConn{idle, busy} {
		pid := query(t, busy, "SELECT pg_backend_pid()")
		require.Equal(t, last, pid, "one server connection: busy runs on the one idle used")
		n, err := strconv.Atoi(pid[0])
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- sleepAndEcho(ctx, busy, "1.5", 2) }()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		require.NoError(t, pgtest.WaitActive(wctx, monitor, uint32(n), "pg_sleep(1.5)"))
		cancel()
		require.NoError(t, canceller.CancelRequest(ctx))
		err = <-done
		if canceller == idle {
			require.NoError(t, err, "a cancel for an idle client reached another client's query")
		} else {
			require.Equal(t, "57014", pgCode(err), "the control cancel did not stop the query: %v", err)
		}
	}
	require.Equal(t, []string{"ok"}, query(t, idle, "SELECT 'ok'"))
	require.Equal(t, []string{"ok"}, query(t, busy, "SELECT 'ok'"))
}
