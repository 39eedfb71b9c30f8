package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// Session mode: idle clients move with their server connections (the
// same backend process serves them after, with their SET values and
// protocol-level prepared statements, which live on it); a client in a
// transaction moves only after its COMMIT, which the old sluice relays.
func TestHandOffSessionClientsWithTheirServerConnections(t *testing.T) {
	const idle = 5
	text := handOffConfig(t, "session")
	old, next := startSluice(t, text), startSluice(t, text)
	ctx := context.Background()
	type sessionClient struct {
		movedClient
		pid string
	}
	var clients []*sessionClient
	for i := range idle + 1 {
		c := connectTo(t, old, "")
		m := &sessionClient{movedClient: movedClient{c: c, port: c.Conn().LocalAddr().String(), app: fmt.Sprintf("session_%d", i), add: i}}
		query(t, c, "SET application_name = '"+m.app+"'")
		query(t, c, "SET enable_seqscan = off")
		_, err := c.Prepare(ctx, "moved_stmt", fmt.Sprintf("SELECT $1::int + %d", i), nil)
		require.NoError(t, err)
		m.pid = backendPID(t, c)
		clients = append(clients, m)
	}
	inTx := clients[idle]
	query(t, inTx.c, "BEGIN")
	query(t, inTx.c, "CREATE TEMP TABLE moved_later (n int)")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		done <- old.HandOffClients(ctx, sendTo(t, next))
	}()
	waitFor(t, "the idle clients to move", func() bool { return len(next.Snapshot().Clients) == idle })
	// The old sluice forgets a moved client once it has sent it: wait.
	waitFor(t, "only the client in a transaction to stay (it does until it ends)", func() bool { return len(old.Snapshot().Clients) == 1 })
	query(t, inTx.c, "INSERT INTO moved_later VALUES (1)")
	query(t, inTx.c, "COMMIT")
	require.NoError(t, <-done)
	shutdownNow(old)

	var all []*movedClient
	for _, m := range clients {
		require.Equal(t, m.pid, backendPID(t, m.c), "the same server connection")
		m.check(t)
		all = append(all, &m.movedClient)
	}
	requireClientsAt(t, next, all)
	require.Equal(t, []string{"1"}, query(t, inTx.c, "SELECT n FROM moved_later"), "its temporary table moved with it")

	// Its cancel key (the server's PID, sluice's secret) works on the new sluice.
	c := clients[0].c
	res := make(chan error, 1)
	go func() { res <- c.ExecParams(ctx, "SELECT pg_sleep(60)", nil, nil, nil, nil).Read().Err }()
	waitFor(t, "the query to run", func() bool {
		rows, err := pgtest.Cluster(t).Query(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+clients[0].pid+" AND state = 'active'")
		require.NoError(t, err)
		return rows[0][0] == "1"
	})
	sendCancel(t, next.Addr().String(), c.PID(), c.SecretKey())
	var pe *pgconn.PgError
	require.True(t, errors.As(<-res, &pe))
	require.Equal(t, "57014", pe.Code)
}

// A pinned transaction-mode client (a temporary table lives on its server
// connection, which does not move) stays on the old sluice, served with
// its table, while the idle one moves; HandOffClients waits for it to
// unpin until its context ends.
func TestHandOffPinnedClientStays(t *testing.T) {
	text := handOffConfig(t, "transaction")
	old, next := startSluice(t, text), startSluice(t, text)
	pinned, idle := connectTo(t, old, ""), connectTo(t, old, "")
	query(t, pinned, "CREATE TEMP TABLE pinned_here (n int)")
	query(t, idle, "SELECT 1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- old.HandOffClients(ctx, sendTo(t, next)) }()
	waitFor(t, "the idle client to move", func() bool { return len(next.Snapshot().Clients) == 1 })
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Len(t, old.Snapshot().Clients, 1)
	require.Equal(t, []string{"0"}, query(t, pinned, "SELECT count(*) FROM pinned_here"))
	require.Equal(t, []string{"1"}, query(t, idle, "SELECT 1"))
}

// A session-mode client whose hand-off fails (here: the new process
// refuses another state version) stays on the old sluice with its server
// connection, and its relay goes on as before.
func TestHandOffSessionFailedSendKeepsClient(t *testing.T) {
	text := handOffConfig(t, "session")
	old, next := startSluice(t, text), startSluice(t, text)
	c := connectTo(t, old, "")
	query(t, c, "SET application_name = 'stays_in_session'")
	pid := backendPID(t, c)
	handOffAsOtherVersion(t, old, next)
	require.Empty(t, next.Snapshot().Clients)
	require.Equal(t, pid, backendPID(t, c))
	require.Equal(t, []string{"stays_in_session"}, query(t, c, "SHOW application_name"))
}
