package proxy_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// A session-mode server connection a cancel was sent through is closed
// when the session ends, not given to the next client (a late cancel
// could stop that client's query): with one connection in the pool, the
// next session gets a new server process. Without a cancel the same one
// is reused (TestSessionStateDoesNotLeakToNextClient).
func TestSessionCancelledConnectionIsNotReused(t *testing.T) {
	h := start(t, "min_size: 0\n      max_size: 1")
	ctx := context.Background()
	c1 := h.connect(ctx)
	pid1 := query(t, c1, "SELECT pg_backend_pid()")[0]
	cl := pgtest.Cluster(t) // the monitor goes straight to PostgreSQL: the pool has one connection
	monitor, err := pgconn.Connect(ctx, cl.DSN("postgres", "", "postgres")+" host="+cl.SocketDir)
	require.NoError(t, err)
	defer monitor.Close(ctx)
	cancelled := make(chan error, 1)
	go func() {
		if err := pgtest.WaitActive(ctx, monitor, c1.PID(), "pg_sleep(30)"); err != nil {
			cancelled <- err
			return
		}
		cancelled <- c1.CancelRequest(ctx)
	}()
	_, err = c1.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
	require.NoError(t, <-cancelled)
	require.Equal(t, "57014", pgCode(err), "%v", err)
	require.NoError(t, c1.Close(ctx))

	c2 := h.connect(ctx)
	require.NotEqual(t, pid1, query(t, c2, "SELECT pg_backend_pid()")[0], "the cancelled connection was reused")
}
