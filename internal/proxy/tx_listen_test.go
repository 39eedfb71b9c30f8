package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// listener is a client whose notifications are collected as they
// arrive (pgconn hands them to OnNotification while it reads).
type listener struct {
	*pgconn.PgConn
	ch chan *pgconn.Notification
}

// connectListening connects a client whose notifications are kept for
// nextNotification.
func connectListening(t *testing.T, h *harness) *listener {
	t.Helper()
	cfg, err := pgconn.ParseConfig(h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	l := &listener{ch: make(chan *pgconn.Notification, 100000)}
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { l.ch <- n }
	l.PgConn, err = pgconn.ConnectConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// nextNotification returns l's next notification, reading the
// connection until one comes; the minute guards against a hang on a
// loaded machine, it is not a measured limit.
func nextNotification(t *testing.T, l *listener) *pgconn.Notification {
	t.Helper()
	select {
	case n := <-l.ch:
		return n
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, l.WaitForNotification(ctx))
	return <-l.ch
}

// simple runs sql (maybe several statements) with the simple protocol.
func simple(t *testing.T, c *pgconn.PgConn, sql string) {
	t.Helper()
	_, err := c.Exec(context.Background(), sql).ReadAll()
	require.NoError(t, err, sql)
}

// LISTEN in transaction mode no longer pins: the listening client's
// server connection goes back to the pool at once (a second client runs
// on the pool's only connection), and notifications reach it through
// the pool's listener connection, with the notifying server process's
// PID. UNLISTEN stops them, and the listener closes when nobody listens.
func TestTxListenDoesNotPin(t *testing.T) {
	h := start(t, txPool(1))
	m := h.srv.Metrics()
	a := connectListening(t, h)
	b := h.connect(context.Background())
	query(t, a.PgConn, "LISTEN tx_listen_ch")
	require.Equal(t, 0.0, metricValue(t, m.PinnedClients.WithLabelValues("listen")), "LISTEN does not pin")
	require.Equal(t, 0.0, metricValue(t, m.Pins.WithLabelValues("listen")))
	require.Equal(t, 1.0, metricValue(t, m.Notify.ListenerConnections.WithLabelValues(pgtest.AppDB, pgtest.AppUser)))
	require.Equal(t, []string{"b"}, query(t, b, "SELECT 'b'"), "the pool's only connection is free")
	require.Empty(t, query(t, b, "SELECT pg_listening_channels()"), "the pooled connection listens to nothing")

	pid := query(t, b, "SELECT pg_backend_pid() FROM (SELECT pg_notify('tx_listen_ch', 'hello')) n")
	n := nextNotification(t, a)
	require.Equal(t, "tx_listen_ch", n.Channel)
	require.Equal(t, "hello", n.Payload)
	require.Equal(t, pid[0], strconv.Itoa(int(n.PID)), "the PID of the server process that sent it")

	simple(t, a.PgConn, "UNLISTEN tx_listen_ch; LISTEN tx_listen_other")
	simple(t, b, "NOTIFY tx_listen_ch, 'gone'; NOTIFY tx_listen_other, 'other'")
	n = nextNotification(t, a)
	require.Equal(t, "other", n.Payload, "nothing on the channel a stopped listening to")

	query(t, a.PgConn, "UNLISTEN *")
	eventuallyMetric(t, m.Notify.ListenerConnections.WithLabelValues(pgtest.AppDB, pgtest.AppUser), 0)
	waitServerConns(t, "", 1)
}

// A LISTEN takes effect when its transaction commits, as in PostgreSQL:
// one rolled back registers nothing, one inside a committed block works,
// and DISCARD ALL stops listening.
func TestTxListenFollowsTransactions(t *testing.T) {
	h := start(t, txPool(2))
	a := connectListening(t, h)
	b := h.connect(context.Background())
	simple(t, a.PgConn, "BEGIN; LISTEN tx_rolled_back; ROLLBACK")
	query(t, a.PgConn, "BEGIN")
	query(t, a.PgConn, "LISTEN tx_committed")
	query(t, a.PgConn, "COMMIT")
	query(t, b, "NOTIFY tx_rolled_back, 'no'")
	query(t, b, "NOTIFY tx_committed, 'yes'")
	n := nextNotification(t, a)
	require.Equal(t, "tx_committed", n.Channel, "the rolled-back LISTEN registered nothing")

	query(t, a.PgConn, "DISCARD ALL")
	query(t, a.PgConn, "LISTEN tx_after_discard")
	query(t, b, "NOTIFY tx_committed, 'no'")
	query(t, b, "NOTIFY tx_after_discard, 'yes'")
	n = nextNotification(t, a)
	require.Equal(t, "tx_after_discard", n.Channel, "DISCARD ALL stopped tx_committed")
}

// With limits.max_pending_notifications 0 the fan-out is off: LISTEN
// pins the client as before.
func TestTxListenPinsWhenFanOutIsOff(t *testing.T) {
	h := startWith(t, txPool(1), "limits:\n  max_pending_notifications: 0\n")
	m := h.srv.Metrics()
	a := h.connect(context.Background())
	query(t, a, "LISTEN tx_pinned_ch")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("listen"), 1)
	require.Equal(t, []string{"tx_pinned_ch"}, query(t, a, "SELECT pg_listening_channels()"))
	query(t, a, "UNLISTEN *")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("listen"), 0)
}

// A listening client parked while idle (no goroutine, txpool's park.go)
// is woken for a notification, gets it, and parks again.
func TestTxListenWakesParkedClient(t *testing.T) {
	h := start(t, txPool(1))
	h.srv.SetParkAfter(20 * time.Millisecond)
	a := connectListening(t, h)
	query(t, a.PgConn, "LISTEN tx_parked_ch")
	require.Eventually(t, func() bool { return h.srv.ParkedClients() == 1 }, time.Minute, 5*time.Millisecond, "the idle listener parks")
	b := h.connect(context.Background())
	for i := range 3 {
		query(t, b, fmt.Sprintf("SELECT pg_notify('tx_parked_ch', 'wake %d')", i))
		require.Equal(t, fmt.Sprintf("wake %d", i), nextNotification(t, a).Payload)
		require.Eventually(t, func() bool { return h.srv.ParkedClients() >= 1 }, time.Minute, 5*time.Millisecond, "it parks again")
	}
}

// A listening client pinned for another reason (a temp table) gets the
// notifications that came during its transaction when it ends, and
// those that come while it idles on its connection at once.
func TestTxListenPinnedClient(t *testing.T) {
	h := start(t, txPool(2))
	a := connectListening(t, h)
	b := h.connect(context.Background())
	simple(t, a.PgConn, "LISTEN tx_pinned_listen; CREATE TEMP TABLE tx_pin_listen_t (n int)")
	query(t, b, "NOTIFY tx_pinned_listen, 'idle'")
	require.Equal(t, "idle", nextNotification(t, a).Payload)
	simple(t, a.PgConn, "BEGIN")
	query(t, b, "NOTIFY tx_pinned_listen, 'during'")
	require.Equal(t, []string{"0"}, query(t, a.PgConn, "SELECT count(*) FROM tx_pin_listen_t"))
	simple(t, a.PgConn, "COMMIT")
	require.Equal(t, "during", nextNotification(t, a).Payload)
}

// A listening client pinned for another reason ends a transaction with a
// slow statement: notifications queued during the transaction are
// written after its ReadyForQuery by the attachment's reader, even
// though the client goroutine looked for them before the answer came
// (the pg_sleep makes that order likely; the assertion only waits).
// Without the reader's delivery, the notification would wait for the
// client's next message.
func TestTxListenPinnedSlowCommit(t *testing.T) {
	h := start(t, txPool(2))
	h.srv.SetParkAfter(time.Hour) // no hop sweep to wake the client goroutine meanwhile
	a := connectListening(t, h)
	b := h.connect(context.Background())
	simple(t, a.PgConn, "LISTEN tx_slow_commit; CREATE TEMP TABLE tx_slow_commit_t (n int)")
	simple(t, a.PgConn, "BEGIN")
	query(t, b, "NOTIFY tx_slow_commit, 'during'")
	simple(t, a.PgConn, "SELECT pg_sleep(0.3); COMMIT")
	require.Equal(t, "during", nextNotification(t, a).Payload)
}
