package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/metricstest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// waitUntil polls cond: sluice records some metrics (a transaction's
// duration, a session's end) right after the client got its answer. The
// minute guards against a hang, it is not a measured limit.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, time.Minute, 5*time.Millisecond, what)
}

// Every pool reports where its time goes and how much it served: the
// queries and transactions it relayed (counted as PgBouncer counts
// total_query_count and total_xact_count), the wait for a server
// connection, the login, server connection and session durations, and
// in session mode each round trip, in transaction mode each
// transaction's hold on a server connection; plus its max_size and its
// active clients. None of these series existed before.
func TestPoolMetricsCountAndTime(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			h := start(t, "min_size: 1\n      max_size: 3\n    pool_mode: "+mode)
			reg := h.srv.Metrics().Registry
			pl := []string{"database", pgtest.AppDB, "user", pgtest.AppUser}
			value := func(name string) float64 {
				t.Helper()
				v, ok := metricstest.Value(t, reg, name, pl...)
				require.True(t, ok, name)
				return v
			}
			count := func(name string) uint64 {
				t.Helper()
				n, _, ok := metricstest.Histogram(t, reg, name, pl...)
				require.True(t, ok, name)
				return n
			}
			ctx := context.Background()
			c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
			require.NoError(t, err)
			for range 5 {
				query(t, c, "SELECT 1") // an autocommit statement: one query, one transaction
			}
			for _, sql := range []string{"BEGIN", "SELECT 1", "COMMIT"} { // three queries, one transaction
				_, err := c.Exec(ctx, sql).ReadAll()
				require.NoError(t, err)
			}
			require.Equal(t, 8.0, value("sluice_pool_queries_total"))
			require.Equal(t, 6.0, value("sluice_pool_transactions_total"))
			require.Equal(t, 3.0, value("sluice_pool_max_size"))
			require.Equal(t, 1.0, value("sluice_pool_active_clients"))
			require.Equal(t, uint64(1), count("sluice_client_login_duration_seconds"))
			require.GreaterOrEqual(t, count("sluice_pool_wait_seconds"), uint64(1))
			require.GreaterOrEqual(t, count("sluice_server_connect_duration_seconds"), uint64(1))
			if mode == "session" {
				require.Equal(t, uint64(8), count("sluice_query_duration_seconds"), "one round trip per query")
				require.Zero(t, count("sluice_transaction_duration_seconds"), "session mode holds a connection per session, not per transaction")
			} else {
				// Six attachments (and the login's own borrow, for its greeting).
				waitUntil(t, "six transactions' durations", func() bool { return count("sluice_transaction_duration_seconds") >= 6 })
				require.Zero(t, count("sluice_query_duration_seconds"), "query durations are session mode's")
			}
			require.Zero(t, count("sluice_client_session_duration_seconds"))
			require.NoError(t, c.Close(ctx))
			waitUntil(t, "the session's duration", func() bool { return count("sluice_client_session_duration_seconds") == 1 })
			require.Zero(t, value("sluice_pool_active_clients"))
		})
	}
}

// A client queued behind a busy connection has its wait observed: the
// histogram's sum grows by at least the time it spent in the queue, which
// the test reads while it is queued (sluice_pool_waiting_clients).
func TestPoolWaitObservesQueuedClient(t *testing.T) {
	h := start(t, "min_size: 1\n      max_size: 1\n      borrow_timeout: 1m\n    pool_mode: transaction")
	reg := h.srv.Metrics().Registry
	pl := []string{"database", pgtest.AppDB, "user", pgtest.AppUser}
	ctx := context.Background()
	holder, waiter := h.connect(ctx), h.connect(ctx)
	_, err := holder.Exec(ctx, "BEGIN").ReadAll()
	require.NoError(t, err)
	n0, sum0, _ := metricstest.Histogram(t, reg, "sluice_pool_wait_seconds", pl...)

	res := make(chan error, 1)
	go func() { _, err := waiter.Exec(ctx, "SELECT 1").ReadAll(); res <- err }()
	waitUntil(t, "the second client queued", func() bool {
		v, _ := metricstest.Value(t, reg, "sluice_pool_waiting_clients", pl...)
		return v == 1
	})
	queued := time.Now()
	time.Sleep(20 * time.Millisecond) // a wait long enough to tell from 0 (a lower bound only, never asserted as an upper one)
	_, err = holder.Exec(ctx, "COMMIT").ReadAll()
	require.NoError(t, err)
	require.NoError(t, <-res)
	waited := time.Since(queued)
	n1, sum1, _ := metricstest.Histogram(t, reg, "sluice_pool_wait_seconds", pl...)
	require.Equal(t, n0+1, n1, "one more borrow")
	require.GreaterOrEqual(t, sum1-sum0, 0.020, "the queued borrow's wait (the test saw at most %s)", waited)
}
