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

// Acceptance 3: two clients with their own TimeZone and search_path,
// interleaved on one server connection, always see their own values;
// a third with a startup setting (options) gets a connection opened
// with it (settings affinity replaces the connection at each switch, so
// its rounds are few: each costs a login).
func TestTxSettingsFollowTheClient(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a := h.connect(ctx)
	b := h.connect(ctx)
	query(t, a, "SET TimeZone = 'Asia/Tokyo'")
	query(t, a, "SET search_path = tx_a, public")
	query(t, b, "SET TIME ZONE 'America/New_York'")
	query(t, b, "SET search_path TO tx_b")
	query(t, b, "SET DateStyle = 'SQL, DMY'")
	want := map[string][]string{
		"a": {"Asia/Tokyo", "tx_a, public", "ISO, MDY"},
		"b": {"America/New_York", "tx_b", "SQL, DMY"},
		"c": {"Europe/Paris", "public", "German, DMY"},
	}
	const sql = "SELECT current_setting('TimeZone') || '|' || current_setting('search_path') || '|' || current_setting('DateStyle'), pg_backend_pid()"
	check := func(i int, name string, c *pgconn.PgConn) string {
		rows, err := c.Exec(ctx, sql).ReadAll()
		require.NoError(t, err)
		row := rows[0].Rows[0]
		require.Equal(t, fmt.Sprintf("%s|%s|%s", want[name][0], want[name][1], want[name][2]), string(row[0]), "query %d of client %s", i, name)
		return string(row[1])
	}
	pids := map[string]bool{}
	for i := range 2000 {
		for name, c := range map[string]*pgconn.PgConn{"a": a, "b": b} {
			pids[check(i, name, c)] = true
		}
	}
	require.Len(t, pids, 1, "a and b share the pool's one server connection")
	cl := h.connect(ctx, "options='-c DateStyle=German,DMY -c search_path=public'")
	query(t, cl, "SET TimeZone = 'Europe/Paris'")
	for i := range 50 {
		for name, c := range map[string]*pgconn.PgConn{"a": a, "c": cl} {
			check(i, name, c)
		}
	}
	// SET LOCAL lasts for its transaction only; RESET returns to the default.
	query(t, a, "BEGIN")
	query(t, a, "SET LOCAL TimeZone = 'UTC'")
	require.Equal(t, []string{"UTC"}, query(t, a, "SHOW TimeZone"))
	query(t, a, "COMMIT")
	require.Equal(t, []string{"Asia/Tokyo"}, query(t, a, "SHOW TimeZone"))
	query(t, b, "RESET search_path")
	require.Equal(t, []string{`"$user", public`}, query(t, b, "SHOW search_path"))
	require.Equal(t, []string{"tx_a, public"}, query(t, a, "SHOW search_path"))
	// A SET inside a rolled-back transaction is undone.
	query(t, a, "BEGIN")
	query(t, a, "SET statement_timeout = '7s'")
	query(t, a, "ROLLBACK")
	require.Equal(t, []string{"0"}, query(t, a, "SHOW statement_timeout"))
	query(t, a, "SET statement_timeout = '7s'")
	require.Equal(t, []string{"0"}, query(t, b, "SHOW statement_timeout"))
	require.Equal(t, []string{"7s"}, query(t, a, "SHOW statement_timeout"))
}

// Acceptance 4: state that cannot move pins the client, is counted by
// reason, and DISCARD ALL (or undoing it) unpins.
func TestTxPinningByReason(t *testing.T) {
	h := start(t, txPool(2))
	ctx := context.Background()
	m := h.srv.Metrics()
	a := h.connect(ctx)
	notes := make(chan string, 10)
	cfg, err := pgconn.ParseConfig(h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { notes <- n.Payload }
	b, err := pgconn.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer b.Close(ctx)

	query(t, a, "CREATE TEMP TABLE tx_tmp(n int)")
	pid := query(t, a, "SELECT pg_backend_pid()")
	query(t, a, "INSERT INTO tx_tmp VALUES (42)")
	for range 5 {
		require.Equal(t, []string{"42"}, query(t, b, "SELECT 42")) // b never gets a's connection
		require.NotEqual(t, pid, query(t, b, "SELECT pg_backend_pid()"))
		require.Equal(t, []string{"42"}, query(t, a, "SELECT n FROM tx_tmp"))
		require.Equal(t, pid, query(t, a, "SELECT pg_backend_pid()"))
	}
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("temp_table"), 1)
	eventuallyMetric(t, m.Pins.WithLabelValues("temp_table"), 1)
	eventuallyLogged(t, h, `msg="client pinned to its server connection" reason=temp_table `)

	query(t, a, "DISCARD ALL")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("temp_table"), 0)
	eventuallyLogged(t, h, `msg="client no longer pinned" reason=temp_table `)

	// LISTEN does not pin (the fan-out, tx_listen_test.go): an idle
	// client still gets notifications, and UNLISTEN and DISCARD ALL stop
	// them.
	query(t, b, "LISTEN tx_channel")
	query(t, a, "NOTIFY tx_channel, 'hello'")
	ctxWait, cancel := context.WithTimeout(ctx, time.Minute) // a guard against a hang, not a measured limit
	defer cancel()
	require.NoError(t, b.WaitForNotification(ctxWait), "an idle listening client gets notifications")
	require.Equal(t, "hello", <-notes)
	require.Equal(t, 0.0, metricValue(t, m.Pins.WithLabelValues("listen")), "LISTEN does not pin")
	for _, stop := range []string{"UNLISTEN *", "DISCARD ALL"} {
		query(t, b, stop)
		query(t, b, "LISTEN tx_channel_2")
		simple(t, a, "NOTIFY tx_channel, 'stopped'; NOTIFY tx_channel_2, 'after "+stop+"'")
		require.NoError(t, b.WaitForNotification(ctxWait))
		require.Equal(t, "after "+stop, <-notes, "nothing on tx_channel after %s", stop)
		query(t, b, "UNLISTEN tx_channel_2")
		query(t, b, "LISTEN tx_channel")
	}
	require.Equal(t, 0.0, metricValue(t, m.PinnedClients.WithLabelValues("listen")))

	query(t, a, "SELECT pg_advisory_lock(7)")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("advisory_lock"), 1)
	query(t, a, "SELECT pg_advisory_unlock(7)")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("advisory_lock"), 0)

	query(t, a, "PREPARE q AS SELECT 1")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("sql_prepare"), 1)
	require.Equal(t, []string{"1"}, query(t, a, "EXECUTE q"))
	query(t, a, "DEALLOCATE q")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("sql_prepare"), 0)
}
