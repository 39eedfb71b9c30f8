package proxy_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// A transaction-pooled client that LISTENs (through the pool's fan-out,
// not pinned) moves with its channels: after the hand-off the new sluice
// listens to them for it, and NOTIFYs sent afterwards reach it, once
// each, on its own TCP connection.
func TestHandOffListeningClientKeepsItsChannels(t *testing.T) {
	text := handOffConfig(t, "transaction")
	old := startSluice(t, text)
	got := make(chan *pgconn.Notification, 16)
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		old.Addr().(*net.TCPAddr).Port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, err)
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { got <- n }
	ctx := context.Background()
	c, err := pgconn.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer c.Close(ctx)
	port := c.Conn().LocalAddr().String()
	query(t, c, "LISTEN handoff_ch1")
	query(t, c, "LISTEN handoff_ch2")

	next := startSluice(t, text)
	handOff(t, old, sendTo(t, next))
	require.Empty(t, old.Snapshot().Clients, "the listening client moved")
	shutdownNow(old)

	other := connectTo(t, next, "")
	query(t, other, "NOTIFY handoff_ch1, 'one'")
	query(t, other, "NOTIFY handoff_ch2, 'two'")
	query(t, other, "NOTIFY handoff_ch3, 'not listened to'")
	wctx, cancel := context.WithTimeout(ctx, time.Minute) // a guard against a hang
	defer cancel()
	var payloads []string
	for len(payloads) < 2 {
		select {
		case n := <-got:
			payloads = append(payloads, n.Channel+":"+n.Payload)
			continue
		default:
		}
		require.NoError(t, c.WaitForNotification(wctx), "the moved client is still told of its channels' notifications")
	}
	for len(got) > 0 {
		n := <-got
		payloads = append(payloads, n.Channel+":"+n.Payload)
	}
	require.Equal(t, []string{"handoff_ch1:one", "handoff_ch2:two"}, payloads)
	require.Equal(t, port, c.Conn().LocalAddr().String(), "on its own connection")
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
}

// A transaction-pooled client's SQL-level prepared statements (PREPARE,
// tracked without a pin) move with it: after the hand-off EXECUTE runs
// them on the new sluice's connections, which never saw the PREPARE, and
// DEALLOCATE forgets them as PostgreSQL would.
func TestHandOffKeepsSQLPreparedStatements(t *testing.T) {
	text := handOffConfig(t, "transaction")
	old := startSluice(t, text)
	c := connectTo(t, old, "")
	sq := func(sql string) []string { // the simple protocol: what psql sends, and what sluice takes over
		t.Helper()
		out, err := simpleQuery(context.Background(), c, sql)
		require.NoError(t, err, sql)
		return out
	}
	port := c.Conn().LocalAddr().String()
	sq("PREPARE moved_sql (int) AS SELECT $1 * 2")
	sq(`PREPARE "Quoted Name" AS SELECT 'quoted'`)
	require.Equal(t, []string{"42"}, sq("EXECUTE moved_sql(21)"))

	next := startSluice(t, text)
	handOff(t, old, sendTo(t, next))
	require.Empty(t, old.Snapshot().Clients, "the client moved")
	shutdownNow(old)

	require.Equal(t, port, c.Conn().LocalAddr().String(), "on its own connection")
	require.Equal(t, []string{"14"}, sq("EXECUTE moved_sql(7)"))
	require.Equal(t, []string{"quoted"}, sq(`EXECUTE "Quoted Name"`))
	sq("DEALLOCATE moved_sql")
	err := c.Exec(context.Background(), "EXECUTE moved_sql(1)").Close()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "26000", pgErr.Code, "deallocated, as PostgreSQL says")
	require.Equal(t, []string{"quoted"}, sq(`EXECUTE "Quoted Name"`))
}
