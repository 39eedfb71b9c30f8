package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// simple runs sql with the simple protocol (one Query message, as psql
// sends it) and returns the first column of the last result's rows.
func simpleQuery(ctx context.Context, c *pgconn.PgConn, sql string) ([]string, error) {
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var out []string
	if len(res) > 0 {
		for _, r := range res[len(res)-1].Rows {
			out = append(out, string(r[0]))
		}
	}
	return out, nil
}

func requireSimple(t *testing.T, c *pgconn.PgConn, sql string, want ...string) {
	t.Helper()
	got, err := simpleQuery(context.Background(), c, sql)
	require.NoError(t, err, sql)
	if want != nil {
		require.Equal(t, want, got, sql)
	}
}

func requireSQLState(t *testing.T, c *pgconn.PgConn, sql, code, message string) {
	t.Helper()
	_, err := simpleQuery(context.Background(), c, sql)
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "%s: want %s, got %v", sql, code, err)
	require.Equal(t, code, pe.Code, "%s: %v", sql, pe)
	require.Equal(t, message, pe.Message, sql)
}

// 50 clients over 5 server connections with max_prepared_statements 3,
// each PREPAREing (SQL level, one statement shared by all and one of its
// own) inside a transaction and EXECUTEing in later ones, inside and
// outside transactions: every result is right, nobody is pinned and no
// EXECUTE finds its statement missing, although the statements are
// evicted from the connections and prepared again all the time.
func TestTxSQLPrepareWithoutPin(t *testing.T) {
	h := start(t, "max_size: 5\n      max_prepared_statements: 3\n    pool_mode: transaction")
	m := h.srv.Metrics()
	ctx := context.Background()
	const clients, rounds = 50, 12
	var wg sync.WaitGroup
	var checked sync.Map
	for id := range clients {
		c := h.connect(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := sqlPrepareClient(ctx, c, id, rounds)
			if err != nil {
				t.Errorf("client %d: %v", id, err)
			}
			checked.Store(id, n)
		}()
	}
	wg.Wait()
	total := 0
	checked.Range(func(_, v any) bool { total += v.(int); return true })
	require.Equal(t, clients*rounds*4, total)
	require.Zero(t, metricValue(t, m.Pins.WithLabelValues("sql_prepare")), "SQL PREPARE pinned a client")
	require.Zero(t, metricValue(t, m.PinnedClients.WithLabelValues("sql_prepare")))
	require.NotContains(t, h.logs.String(), "client pinned")
}

func sqlPrepareClient(ctx context.Context, c *pgconn.PgConn, id, rounds int) (int, error) {
	for _, q := range []string{
		"BEGIN",
		"PREPARE shared (int) AS SELECT $1 + 1000",
		fmt.Sprintf("PREPARE Own AS SELECT 'client %d'", id),
		"COMMIT",
	} {
		if _, err := simpleQuery(ctx, c, q); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	checked := 0
	check := func(q, want string) error {
		got, err := simpleQuery(ctx, c, q)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		if len(got) != 1 || got[0] != want {
			return fmt.Errorf("%s = %q, want %s", q, got, want)
		}
		checked++
		return nil
	}
	for r := range rounds {
		if err := check(fmt.Sprintf("EXECUTE shared(%d)", r), strconv.Itoa(r+1000)); err != nil {
			return checked, err
		}
		if err := check("execute own;", fmt.Sprintf("client %d", id)); err != nil {
			return checked, err
		}
		if _, err := simpleQuery(ctx, c, "BEGIN"); err != nil {
			return checked, err
		}
		if err := check(`EXECUTE "own"`, fmt.Sprintf("client %d", id)); err != nil {
			return checked, err
		}
		if err := check(fmt.Sprintf("EXECUTE shared (%d * 2)", id), strconv.Itoa(id*2+1000)); err != nil {
			return checked, err
		}
		onServer, err := simpleQuery(ctx, c, `SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sluice\_%'`)
		if err != nil {
			return checked, err
		}
		if n, _ := strconv.Atoi(onServer[0]); n > 3 {
			return checked, fmt.Errorf("%d of sluice's statements on a server connection, over max_prepared_statements", n)
		}
		if _, err := simpleQuery(ctx, c, "COMMIT"); err != nil {
			return checked, err
		}
	}
	return checked, nil
}

// What the client sees of SQL-level prepared statements is what
// PostgreSQL says: 42P05 for a name it has, 26000 for one it does not
// have or no longer has (DEALLOCATE, DEALLOCATE ALL, DISCARD ALL), a
// PREPARE the server refuses leaves nothing, a rolled-back transaction
// keeps what it prepared (PREPARE is not transactional), and a DEALLOCATE
// refused in a failed transaction keeps the statement. None of it pins.
func TestTxSQLPrepareAnswersAsPostgres(t *testing.T) {
	h := start(t, txPool(1))
	m := h.srv.Metrics()
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)

	requireSimple(t, a, "PREPARE p1 (int) AS SELECT $1 * 2")
	requireSQLState(t, a, "PREPARE p1 AS SELECT 1", "42P05", `prepared statement "p1" already exists`)
	requireSimple(t, b, "SELECT 1", "1") // b gets the connection between a's statements
	requireSimple(t, a, "EXECUTE p1(21)", "42")
	requireSQLState(t, a, "EXECUTE nope", "26000", `prepared statement "nope" does not exist`)
	requireSQLState(t, b, "EXECUTE p1(1)", "26000", `prepared statement "p1" does not exist`)
	requireSQLState(t, a, "DEALLOCATE nope", "26000", `prepared statement "nope" does not exist`)
	requireSimple(t, a, "EXECUTE p1(4)", "8") // a failed DEALLOCATE of another name keeps p1

	requireSQLState(t, a, "PREPARE bad AS SELECT * FROM tx_no_such_table", "42P01", `relation "tx_no_such_table" does not exist`)
	requireSQLState(t, a, "EXECUTE bad", "26000", `prepared statement "bad" does not exist`)

	requireSimple(t, a, "BEGIN")
	requireSimple(t, a, "PREPARE in_tx AS SELECT 'kept'")
	requireSimple(t, a, "ROLLBACK")
	requireSimple(t, b, "SELECT 1", "1")
	requireSimple(t, a, "EXECUTE in_tx", "kept")

	requireSimple(t, a, "BEGIN")
	requireSQLState(t, a, "SELECT 1/0", "22012", "division by zero")
	requireSQLState(t, a, "DEALLOCATE in_tx", "25P02", "current transaction is aborted, commands ignored until end of transaction block")
	requireSimple(t, a, "ROLLBACK")
	requireSimple(t, a, "EXECUTE in_tx", "kept")

	requireSimple(t, a, "DEALLOCATE PREPARE in_tx")
	requireSQLState(t, a, "EXECUTE in_tx", "26000", `prepared statement "in_tx" does not exist`)
	requireSQLState(t, a, "DEALLOCATE in_tx", "26000", `prepared statement "in_tx" does not exist`)
	requireSimple(t, a, "PREPARE in_tx AS SELECT 'again'") // the name is free again
	requireSimple(t, a, "EXECUTE in_tx", "again")

	requireSimple(t, a, "DEALLOCATE ALL")
	requireSQLState(t, a, "EXECUTE p1(1)", "26000", `prepared statement "p1" does not exist`)
	requireSQLState(t, a, "EXECUTE in_tx", "26000", `prepared statement "in_tx" does not exist`)
	requireSimple(t, a, "PREPARE p1 AS SELECT 'after discard'")
	requireSimple(t, a, "DISCARD ALL")
	requireSQLState(t, a, "EXECUTE p1", "26000", `prepared statement "p1" does not exist`)

	require.Zero(t, metricValue(t, m.Pins.WithLabelValues("sql_prepare")), "SQL PREPARE pinned a client")
}

// psql's PREPARE, EXECUTE and DEALLOCATE (each -c is one Query) through
// a one-connection pool that another client uses in between: psql sees
// PostgreSQL's answers, and with pin_policy error a temp table is
// refused with the documented message while the session goes on.
func TestTxSQLPrepareWithPsql(t *testing.T) {
	h := start(t, "max_size: 1\n      pin_policy: error\n    pool_mode: transaction")
	other := h.connect(context.Background())
	requireSimple(t, other, "SELECT 1", "1")
	run := func(cmds ...string) (string, error) {
		args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-d", pgtest.AppDB}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		return psql(t, []string{"PGPASSWORD=" + pgtest.AppPassword}, args...)
	}
	out, err := run("PREPARE psql_p (int) AS SELECT $1 * 3", "EXECUTE psql_p(14)", "DEALLOCATE psql_p")
	require.NoError(t, err, out)
	require.Equal(t, "PREPARE\n42\nDEALLOCATE\n", out)
	out, err = run("PREPARE psql_p AS SELECT 1", "EXECUTE nope")
	require.Error(t, err)
	require.Contains(t, out, `ERROR:  prepared statement "nope" does not exist`)
	out, err = run("CREATE TEMP TABLE psql_t (x int)")
	require.Error(t, err)
	require.Contains(t, out, "ERROR:  "+tempTableRefusal)
	requireSimple(t, other, "SELECT 2", "2")
}
