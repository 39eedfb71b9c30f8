package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// Shutdown lets a transaction finish, then ends every transaction-pooled
// client at its idle point with 57P01, well before shutdown_timeout.
func TestTxShutdownWaitsForTransactionsThenEndsIdleClients(t *testing.T) {
	h := start(t, txPool(2))
	ctx := context.Background()
	idle := h.connect(ctx)
	busy := h.connect(ctx)
	query(t, busy, "CREATE TABLE IF NOT EXISTS tx_shutdown(n int)")
	query(t, busy, "BEGIN")
	query(t, busy, "INSERT INTO tx_shutdown VALUES (1)")

	done := make(chan struct{})
	go func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		h.srv.Shutdown(sctx)
	}()
	// The idle client is let go at once: it receives 57P01 without
	// sending anything (a read that ends with the error or EOF).
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	err := idle.WaitForNotification(wctx)
	wcancel()
	require.Error(t, err)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the idle client was not ended")
	if code := pgCode(err); code != "" {
		require.Equal(t, "57P01", code)
	}
	// The client in a transaction may finish it.
	query(t, busy, "INSERT INTO tx_shutdown VALUES (2)")
	query(t, busy, "COMMIT")
	<-done
	// Shutdown ended because every session had, not at its deadline
	// (asked of the log, not of the clock: on a loaded machine a clean
	// shutdown can be slow).
	require.NotContains(t, h.logs.String(), "shutdown timeout reached", "shutdown waited for its deadline")
	rows, err := pgtest.Cluster(t).QueryDB(ctx, pgtest.AppDB, "SELECT count(*) FROM tx_shutdown")
	require.NoError(t, err)
	require.Equal(t, "2", rows[0][0], "the transaction committed")
	require.NoError(t, pgtest.Cluster(t).ExecDB(ctx, pgtest.AppDB, "DROP TABLE tx_shutdown"))
}

// One database served in session mode and in transaction mode through
// two entries of the same dbname.
func TestSessionAndTransactionPoolsForOneDatabase(t *testing.T) {
	c := pgtest.Cluster(t)
	sock := t.TempDir()
	text := configText(t, sock, "max_size: 2", "") + fmt.Sprintf(`  appdb_tx:
    hosts: ["127.0.0.1:%d"]
    dbname: %s
    pool_mode: transaction
    pool: {max_size: 1}
`, c.Port, pgtest.AppDB)
	h := startConfig(t, sock, text)
	ctx := context.Background()
	sess := h.connect(ctx)
	tx1, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword, "dbname=appdb_tx"))
	require.NoError(t, err)
	defer tx1.Close(ctx)
	tx2, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword, "dbname=appdb_tx"))
	require.NoError(t, err)
	defer tx2.Close(ctx)
	require.Equal(t, []string{pgtest.AppDB}, query(t, tx1, "SELECT current_database()"))
	require.Equal(t, query(t, tx1, "SELECT pg_backend_pid()"), query(t, tx2, "SELECT pg_backend_pid()"), "transaction mode shares")
	require.NotEqual(t, query(t, sess, "SELECT pg_backend_pid()"), query(t, tx1, "SELECT pg_backend_pid()"))
	require.Equal(t, fmt.Sprint(sess.PID()), query(t, sess, "SELECT pg_backend_pid()")[0], "session mode shows the real PID")
}
