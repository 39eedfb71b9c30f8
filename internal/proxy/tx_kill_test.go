package proxy_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// KILL_CLIENT in transaction mode gives the client PostgreSQL's
// pg_terminate_backend error, as in session mode, whatever it is doing:
// idle without a server connection, parked (no goroutine), or inside a
// transaction, whose work is rolled back and whose server connection
// does not go back to the pool in the transaction.

// killClient kills c through KILL_CLIENT and returns the error its next
// statement gets.
func killClient(t *testing.T, h *harness, c *pgconn.PgConn) *pgconn.PgError {
	t.Helper()
	port := c.Conn().LocalAddr().(*net.TCPAddr).Port
	id := h.srv.ClientIDOf(port)
	require.NotZero(t, id)
	require.NoError(t, h.srv.KillClient(id))
	waitFor(t, "the killed session to end", func() bool { return h.srv.ClientIDOf(port) == 0 })
	_, err := c.Exec(context.Background(), "SELECT 1").ReadAll()
	return pgErr(t, err)
}

func requireKilled(t *testing.T, pe *pgconn.PgError) {
	t.Helper()
	require.Equal(t, "57P01", pe.Code)
	require.Equal(t, "FATAL", pe.Severity)
	require.Equal(t, "terminating connection due to administrator command", pe.Message)
}

func TestTxKillClientIdleGets57P01(t *testing.T) {
	h := start(t, txPool(2))
	h.srv.SetParkAfter(time.Hour) // idle with its goroutine, not parked
	ctx := context.Background()
	victim, other := h.connect(ctx), h.connect(ctx)
	query(t, victim, "SELECT 1")
	requireKilled(t, killClient(t, h, victim))
	require.Equal(t, []string{"2"}, query(t, other, "SELECT 2"), "the other client goes on")
}

func TestTxKillClientParkedGets57P01(t *testing.T) {
	h := start(t, txPool(2))
	h.srv.SetParkAfter(parkAfter)
	ctx := context.Background()
	victim := h.connect(ctx)
	query(t, victim, "SELECT 1")
	waitParked(t, h, 1)
	requireKilled(t, killClient(t, h, victim))
	require.Equal(t, 0, h.srv.ParkedClients())
}

func TestTxKillClientInTransactionGets57P01(t *testing.T) {
	h := start(t, txPool(2))
	ctx := context.Background()
	victim, other := h.connect(ctx), h.connect(ctx)
	query(t, other, "CREATE TABLE IF NOT EXISTS tx_kill_in_tx(n int)")
	t.Cleanup(func() { query(t, h.connect(ctx), "DROP TABLE tx_kill_in_tx") })
	query(t, victim, "BEGIN")
	query(t, victim, "INSERT INTO tx_kill_in_tx VALUES (1)")
	requireKilled(t, killClient(t, h, victim))
	waitServerConns(t, "idle in transaction", 0)
	require.Equal(t, []string{"0"}, query(t, other, "SELECT count(*) FROM tx_kill_in_tx"), "the insert was rolled back")
}

// KILL db in transaction mode: an idle client and one inside a
// transaction both get 57P01; the transaction's server connection is
// closed (its transaction rolled back by PostgreSQL; KILL retires the
// pool's connections), not reused, and after RESUME clients go on.
func TestTxKillDatabaseGets57P01(t *testing.T) {
	h := start(t, txPool(4))
	ctx := context.Background()
	idle, inTx := h.connect(ctx), h.connect(ctx)
	query(t, idle, "SELECT 1")
	query(t, inTx, "BEGIN")
	pid := backendPID(t, inTx)

	require.NoError(t, h.srv.Kill(pgtest.AppDB))
	for _, c := range []*pgconn.PgConn{idle, inTx} {
		_, err := c.Exec(ctx, "SELECT 1").ReadAll()
		requireKilled(t, pgErr(t, err))
	}
	waitFor(t, "the transaction's server connection to close", func() bool { return !pidAlive(t, pid) })
	require.NoError(t, h.srv.Resume(pgtest.AppDB))
	c := h.connect(ctx)
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
}

// A client killed while its statement runs gets 57P01 at once, not when
// the statement ends; the server connection, whose state is unknown, is
// closed rather than reused.
func TestTxKillClientRunningStatementGets57P01(t *testing.T) {
	h := start(t, txPool(1)) // the next client gets the only connection slot
	ctx := context.Background()
	victim := h.connect(ctx)
	query(t, victim, "BEGIN")
	pid := backendPID(t, victim)
	t.Cleanup(func() { // the sleep goes on in PostgreSQL, which does not watch its socket
		_, _ = pgtest.Cluster(t).Query(ctx, "SELECT pg_terminate_backend("+pid+")")
	})
	port := victim.Conn().LocalAddr().(*net.TCPAddr).Port
	id := h.srv.ClientIDOf(port)
	got := make(chan error, 1)
	go func() { _, err := victim.Exec(ctx, "SELECT pg_sleep(3600)").ReadAll(); got <- err }()
	waitFor(t, "the statement to run", func() bool {
		rows, err := pgtest.Cluster(t).Query(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid+" AND query LIKE 'SELECT pg_sleep%' AND state = 'active'")
		require.NoError(t, err)
		return rows[0][0] == "1"
	})
	require.NoError(t, h.srv.KillClient(id))
	requireKilled(t, pgErr(t, <-got))
	waitFor(t, "the killed session to end", func() bool { return h.srv.ClientIDOf(port) == 0 })
	other := h.connect(ctx)
	require.NotEqual(t, pid, backendPID(t, other), "the running statement's connection was closed, not reused")
}
