package proxy_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/sluicetest"
)

const tempTableRefusal = "sluice: a temporary table would pin this client to a server connection (pool_mode transaction, pin_policy error); " +
	"use a regular table or CREATE TEMP TABLE ... ON COMMIT DROP inside a transaction, or use pool_mode session"

// pgError returns err's PostgreSQL error, failing the test without one.
func pgError(t *testing.T, err error, what string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "%s: want a PostgreSQL error, got %v", what, err)
	return pe
}

// With pool.pin_policy error, a statement that would pin is refused with
// 0A000 before it runs, whether sent as a simple Query (psql) or through
// the extended protocol (refused at its Bind): the client's connection
// goes back to the pool at once (a second client of a one-connection
// pool gets it while the first stays connected), the client goes on, a
// refused statement inside a transaction fails that transaction as any
// error, and a temp table ON COMMIT DROP, which pins nothing, runs.
func TestTxPinPolicyErrorRefusesUpFront(t *testing.T) {
	h := start(t, "max_size: 1\n      pin_policy: error\n    pool_mode: transaction")
	m := h.srv.Metrics()
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)

	_, err := simpleQuery(ctx, a, "CREATE TEMP TABLE tx_refused (x int)")
	pe := pgError(t, err, "simple CREATE TEMP TABLE")
	require.Equal(t, "0A000", pe.Code)
	require.Equal(t, tempTableRefusal, pe.Message)
	require.Contains(t, pe.Hint, "pin_policy pin")
	requireSimple(t, b, "SELECT 'b ran'", "b ran") // the only connection is free

	res := a.ExecParams(ctx, "CREATE TEMP TABLE tx_refused (x int)", nil, nil, nil, nil).Read()
	pe = pgError(t, res.Err, "extended CREATE TEMP TABLE")
	require.Equal(t, "0A000", pe.Code)
	require.Equal(t, tempTableRefusal, pe.Message)
	res = a.ExecParams(ctx, "SELECT pg_advisory_lock($1)", [][]byte{[]byte("4712")}, nil, nil, nil).Read()
	pe = pgError(t, res.Err, "extended pg_advisory_lock")
	require.Equal(t, "0A000", pe.Code)
	require.Contains(t, pe.Message, "a session-level advisory lock would pin")
	requireSimple(t, b, "SELECT 'b again'", "b again")

	requireSimple(t, a, "BEGIN")
	_, err = simpleQuery(ctx, a, "SELECT pg_advisory_lock(4712)")
	require.Equal(t, "0A000", pgError(t, err, "in a transaction").Code)
	requireSQLState(t, a, "SELECT 1", "25P02", "current transaction is aborted, commands ignored until end of transaction block")
	requireSimple(t, a, "ROLLBACK")

	requireSimple(t, a, "BEGIN")
	requireSimple(t, a, "CREATE TEMP TABLE tx_dropped ON COMMIT DROP AS SELECT 7 AS n")
	requireSimple(t, a, "SELECT n FROM tx_dropped", "7")
	requireSimple(t, a, "COMMIT")
	requireSimple(t, b, "SELECT 'b last'", "b last")
	requireSimple(t, a, "SELECT 'a goes on'", "a goes on")

	for _, r := range []string{"temp_table", "advisory_lock"} {
		require.Zero(t, metricValue(t, m.Pins.WithLabelValues(r)), "nothing pinned (%s)", r)
	}
	require.Zero(t, serverConnsOf(t, "tx_refused"), "the refused table was never created")
}

// serverConnsOf counts temp tables named name in the cluster.
func serverConnsOf(t *testing.T, name string) int {
	t.Helper()
	rows, err := pgtest.Cluster(t).QueryDB(context.Background(), pgtest.AppDB,
		"SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relname = '"+name+"'")
	require.NoError(t, err)
	n, err := strconv.Atoi(rows[0][0])
	require.NoError(t, err)
	return n
}

// State the lexer cannot see coming (here a role set with set_config)
// that pins under pin_policy error ends the session with 0A000: the
// statement already ran, so it cannot be refused, and the connection is
// cleaned (DISCARD ALL) before another client gets it, never handed on
// with the role set.
func TestTxPinPolicyErrorEndsSessionPinnedAfterTheFact(t *testing.T) {
	ctx := context.Background()
	ensurePinRole(t)
	h := start(t, "max_size: 1\n      pin_policy: error\n    pool_mode: transaction")
	a, b := h.connect(ctx), h.connect(ctx)
	_, err := simpleQuery(ctx, a, "SELECT set_config('role', 'tx_pin_role', false)")
	if err == nil { // the answer came before the check at detach: the next statement finds the session gone
		_, err = simpleQuery(ctx, a, "SELECT 1")
	}
	pe := pgError(t, err, "pinned after the fact")
	require.Equal(t, "0A000", pe.Code)
	require.Contains(t, pe.Message, "(set_role), which pool.pin_policy error refuses")
	requireSimple(t, b, "SELECT current_user", pgtest.AppUser)
	eventuallyLogged(t, h, `msg="session ended by sluice: pinned under pin_policy error"`)
}

// pin_policy follows a RELOAD, for clients already connected.
func TestTxPinPolicyAppliesAtReload(t *testing.T) {
	h := start(t, "max_size: 2\n    pool_mode: transaction")
	ctx := context.Background()
	a := h.connect(ctx)
	reload := func(policy string) {
		text := configText(t, h.sock, "max_size: 2\n      pin_policy: "+policy+"\n    pool_mode: transaction", "")
		cfg, err := config.Parse([]byte(text), sluicetest.NoEnv)
		require.NoError(t, err)
		require.NoError(t, h.srv.Reload(cfg))
	}
	reload("error")
	_, err := simpleQuery(ctx, a, "SELECT pg_advisory_lock(4713)")
	require.Equal(t, "0A000", pgError(t, err, "after reload to error").Code)
	reload("pin")
	requireSimple(t, a, "SELECT pg_advisory_lock(4713)")
	requireSimple(t, a, "SELECT pg_advisory_unlock(4713)", "t")
}

// SHOW PINS names a pinned client's address and port, database, user,
// reason, since when, the statement that pinned it and how to end it,
// and its server connection's pid; the pin is logged once at info with
// the same; once unlocked the view is empty.
func TestConsoleShowPinsExplains(t *testing.T) {
	h := startConsole(t, "transaction")
	ctx := context.Background()
	app := h.connect(ctx)
	pid := query(t, app, "SELECT pg_backend_pid()")[0]
	query(t, app, "SELECT pg_advisory_lock(4714) /* the pinning statement, longer than sixty bytes in all */")
	adm, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)
	res := waitOnePin(t, adm, "the client holding an advisory lock is pinned")
	row := map[string]string{}
	for i, f := range res.FieldDescriptions {
		row[f.Name] = string(res.Rows[0][i])
	}
	_, port, _ := strings.Cut(app.Conn().LocalAddr().String(), ":")
	require.Equal(t, "advisory_lock", row["reasons"])
	require.Equal(t, pgtest.AppDB, row["database"])
	require.Equal(t, pgtest.AppUser, row["user"])
	require.Equal(t, "127.0.0.1", row["addr"])
	require.Equal(t, port, row["port"])
	require.Equal(t, pid, row["server_pid"])
	require.Equal(t, "SELECT pg_advisory_lock(4714) /* the pinning statement, long...", row["statement"])
	require.Contains(t, row["release"], "pg_advisory_unlock")
	require.NotEmpty(t, row["since"])
	eventuallyLogged(t, h, `msg="client pinned to its server connection" reason=advisory_lock statement="SELECT pg_advisory_lock(4714)`)
	require.Contains(t, h.logs.String(), "level=INFO msg=\"client pinned to its server connection\"")

	query(t, app, "SELECT pg_advisory_unlock(4714)")
	require.Eventually(t, func() bool {
		res, err = consoleExec(t, adm, "SHOW PINS")
		require.NoError(t, err)
		return len(res.Rows) == 0
	}, waitLong, tick, "no pin once unlocked")
}

// With pin_policy error and the LISTEN fan-out on (the default), LISTEN
// pins nothing, so it is not refused: the client listens and hears a
// NOTIFY, and the pool's only connection stays free for others.
func TestTxPinPolicyErrorLetsListenThrough(t *testing.T) {
	h := start(t, "max_size: 1\n      pin_policy: error\n    pool_mode: transaction")
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	_, err := simpleQuery(ctx, a, "LISTEN tx_policy_ch")
	require.NoError(t, err, "LISTEN is not refused while the fan-out is on")
	requireSimple(t, b, "NOTIFY tx_policy_ch, 'heard'")   // the only connection is free
	wctx, cancel := context.WithTimeout(ctx, time.Minute) // a guard against a hang
	defer cancel()
	require.NoError(t, a.WaitForNotification(wctx))
}
