package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// tryQuery is query for goroutines: it returns the first column of every
// row, or the error.
func tryQuery(ctx context.Context, c *pgconn.PgConn, sql string) ([]string, error) {
	res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	var out []string
	for _, r := range res.Rows {
		out = append(out, string(r[0]))
	}
	return out, res.Err
}

type queryResult struct {
	rows []string
	err  error
}

// startWaiting runs sql on c in the background; the result arrives on
// the channel. The goroutine uses c until it ends, and a PgConn is not
// safe for concurrent use: so that a test that stops early (a failed
// require) does not close c under it, the query runs with t's context,
// which ends as the test does, and a cleanup (registered after c's, so
// run before c is closed) waits for the goroutine.
func startWaiting(t *testing.T, c *pgconn.PgConn, sql string) <-chan queryResult {
	ch := make(chan queryResult, 1)
	done := make(chan struct{})
	ctx := t.Context()
	go func() {
		defer close(done)
		rows, err := tryQuery(ctx, c, sql)
		ch <- queryResult{rows, err}
	}()
	t.Cleanup(func() { <-done })
	return ch
}

// requireStillWaiting fails if the background query has an answer: it
// must be queued for the pool's only connection. It waits until sluice
// reports a client queued for a connection, rather than for a while:
// a waiter in the queue cannot have been answered by another connection.
func requireStillWaiting(t *testing.T, h *harness, ch <-chan queryResult, why string) {
	t.Helper()
	queued := func() bool {
		n := 0
		for _, p := range h.srv.PoolStats() {
			n += p.Waiting
		}
		return n == 1
	}
	guard := time.After(time.Minute) // against a hang, not a measured limit
	for !queued() {
		select {
		case r := <-ch:
			t.Fatalf("%s: the waiting client ran (%v, %v)", why, r.rows, r.err)
		case <-guard:
			t.Fatalf("%s: the waiting client never queued for a server connection", why)
		case <-time.After(5 * time.Millisecond):
		}
	}
	select {
	case r := <-ch:
		t.Fatalf("%s: the waiting client ran (%v, %v)", why, r.rows, r.err)
	default:
	}
}

// poolNote tells, in a failed assertion about backend pids, whether the
// pool replaced a connection it believed dead (a stale read deadline left
// on a released connection once made the alive check fail) or recycled.
func poolNote(h *harness) string {
	var dead, recycled uint64
	for _, p := range h.srv.PoolStats() {
		dead, recycled = dead+p.DeadRemoved, recycled+p.Recycled
	}
	return fmt.Sprintf(" (pool: %d connection(s) removed as dead, %d recycled)", dead, recycled)
}

// awaitResult returns the background query's result; the minute is a
// guard against a hang, not a measured limit.
func awaitResult(t *testing.T, ch <-chan queryResult) []string {
	t.Helper()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		return r.rows
	case <-time.After(time.Minute):
		t.Fatal("the waiting client never got the server connection")
		return nil
	}
}

// Every pin reason (but listen, which pins only with the LISTEN fan-out
// off: TestTxListenPinsWhenFanOutIsOff), each with each way of undoing it, over a pool of one
// connection: while the client is pinned its state works, it keeps its
// backend between transactions and a second client waits; once the state
// is gone the very same backend goes to the waiting client. Pin and unpin
// are counted by reason and logged with the reason (pin at info, unpin at debug).
func TestTxEveryPinReasonPinsAndUnpins(t *testing.T) {
	ctx := context.Background()
	ensurePinRole(t)
	cases := []struct {
		reason string
		pin    string
		use    string   // needs the state; run while pinned
		want   []string // what use returns
		unpins []string // each undoes pin (one subtest each)
	}{
		{"temp_table", "CREATE TEMP TABLE tx_pin_t AS SELECT 42 AS n", "SELECT n FROM tx_pin_t", []string{"42"},
			[]string{"DROP TABLE tx_pin_t", "DISCARD TEMP", "DISCARD ALL"}},
		{"advisory_lock", "SELECT pg_advisory_lock(4711)",
			"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", []string{"1"},
			[]string{"SELECT pg_advisory_unlock(4711)", "DISCARD ALL"}},
		{"hold_cursor", "DECLARE tx_pin_c CURSOR WITH HOLD FOR SELECT generate_series(1, 3)", "FETCH 2 FROM tx_pin_c", []string{"1", "2"},
			[]string{"CLOSE tx_pin_c", "DISCARD ALL"}},
		{"sql_prepare", "PREPARE tx_pin_q AS SELECT 'prepared'", "EXECUTE tx_pin_q", []string{"prepared"},
			[]string{"DEALLOCATE tx_pin_q", "DISCARD ALL"}},
		{"set_role", "SET ROLE tx_pin_role", "SELECT current_user", []string{"tx_pin_role"},
			[]string{"RESET ROLE", "DISCARD ALL"}},
	}
	for _, tc := range cases {
		for _, unpin := range tc.unpins {
			t.Run(tc.reason+"/"+strings.ReplaceAll(unpin, " ", "_"), func(t *testing.T) {
				h := start(t, txPool(1))
				m := h.srv.Metrics()
				a, b := h.connect(ctx), h.connect(ctx)
				pid := query(t, a, "SELECT pg_backend_pid()")
				query(t, a, tc.pin)
				eventuallyMetric(t, m.PinnedClients.WithLabelValues(tc.reason), 1)
				require.Equal(t, 1.0, metricValue(t, m.Pins.WithLabelValues(tc.reason)))
				eventuallyLogged(t, h, `msg="client pinned to its server connection" reason=`+tc.reason+" ")

				waiting := startWaiting(t, b, "SELECT pg_backend_pid()")
				requireStillWaiting(t, h, waiting, "a is pinned")
				require.Equal(t, tc.want, query(t, a, tc.use), "the pinned state works")
				require.Equal(t, pid, query(t, a, "SELECT pg_backend_pid()"), "a keeps its server connection%s", poolNote(h))
				requireStillWaiting(t, h, waiting, "a is still pinned")

				query(t, a, unpin)
				require.Equal(t, pid, awaitResult(t, waiting), "the unpinned connection went back to the pool, to b%s", poolNote(h))
				eventuallyMetric(t, m.PinnedClients.WithLabelValues(tc.reason), 0)
				eventuallyLogged(t, h, `msg="client no longer pinned" reason=`+tc.reason+" ")
				require.Equal(t, 1.0, metricValue(t, m.Pins.WithLabelValues(tc.reason)))
				require.Equal(t, []string{"1"}, query(t, a, "SELECT 1"), "a goes on, unpinned")
				require.Equal(t, pid, query(t, b, "SELECT pg_backend_pid()"), "the pool's only connection serves both%s", poolNote(h))
			})
		}
	}
}

// LOAD pins for good: nothing undoes it, not even DISCARD ALL, so the
// client keeps its connection until it leaves. LOAD of a library outside
// $libdir/plugins needs a superuser, so a superuser logs in for it.
func TestTxLoadPinsUntilTheClientLeaves(t *testing.T) {
	ctx := context.Background()
	cl := pgtest.Cluster(t)
	if err := cl.Exec(ctx, "LOAD 'auto_explain'"); err != nil {
		t.Skipf("auto_explain cannot be loaded in the test cluster: %v", err)
	}
	require.NoError(t, cl.CreateRole(ctx, "tx_pin_super", "super_pw", "scram-sha-256"))
	require.NoError(t, cl.Exec(ctx, "ALTER ROLE tx_pin_super SUPERUSER"))
	sock := t.TempDir()
	h := startConfig(t, sock, configText(t, sock, txPool(1), "  - name: tx_pin_super\n    password: super_pw\n")+"log:\n  level: debug\n")
	m := h.srv.Metrics()
	connect := func() *pgconn.PgConn {
		c, err := pgconn.Connect(ctx, h.dsn("tx_pin_super", "super_pw"))
		require.NoError(t, err)
		return c
	}
	a, b := connect(), connect()
	// A cleanup, not a defer: it must run after startWaiting's goroutine,
	// which uses b, has ended (cleanups run after defers, last first).
	t.Cleanup(func() { b.Close(ctx) })
	pid := query(t, a, "SELECT pg_backend_pid()")
	query(t, a, "LOAD 'auto_explain'")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("load"), 1)
	require.Equal(t, 1.0, metricValue(t, m.Pins.WithLabelValues("load")))
	eventuallyLogged(t, h, `msg="client pinned to its server connection" reason=load `)

	waiting := startWaiting(t, b, "SELECT 'b ran'")
	requireStillWaiting(t, h, waiting, "a loaded a library")
	require.Equal(t, []string{"off"}, query(t, a, "SHOW auto_explain.log_analyze"), "the library is loaded on a's connection")
	query(t, a, "DISCARD ALL")
	require.Equal(t, pid, query(t, a, "SELECT pg_backend_pid()"), "DISCARD ALL does not unload")
	requireStillWaiting(t, h, waiting, "a ran DISCARD ALL")
	require.Equal(t, 1.0, metricValue(t, m.PinnedClients.WithLabelValues("load")))

	require.NoError(t, a.Close(ctx))
	require.Equal(t, []string{"b ran"}, awaitResult(t, waiting), "the connection is free once a left")
	eventuallyMetric(t, m.PinnedClients.WithLabelValues("load"), 0)
	require.Equal(t, 1.0, metricValue(t, m.Pins.WithLabelValues("load")))
}

// eventuallyLogged waits for sluice to log text: a pin's log line is
// written by the attachment's goroutine after the metrics change, so it
// may come a moment after the client has its answer.
func eventuallyLogged(t *testing.T, h *harness, text string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), text) }, time.Minute, 5*time.Millisecond,
		"sluice never logged %q", text)
}

// ensurePinRole creates tx_pin_role, which the app user may SET ROLE to
// (a role pins a transaction-pooled client), if it does not exist yet.
func ensurePinRole(t *testing.T) {
	t.Helper()
	require.NoError(t, pgtest.Cluster(t).ExecDB(context.Background(), pgtest.AppDB, `DO $$ BEGIN
		CREATE ROLE tx_pin_role NOLOGIN;
	EXCEPTION WHEN duplicate_object THEN NULL; END $$;
	GRANT tx_pin_role TO `+pgtest.AppUser))
}
