package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// txPool is the pool YAML for a transaction-pooled appdb of size n.
func txPool(n int) string { return fmt.Sprintf("max_size: %d\n    pool_mode: transaction", n) }

// serverConns counts the app user's server connections (sluice's: the
// tests connect as app only through sluice).
func serverConns(t *testing.T, state string) int {
	t.Helper()
	where := ""
	if state != "" {
		where = " AND state = '" + state + "'"
	}
	rows, err := pgtest.Cluster(t).Query(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE usename = '"+pgtest.AppUser+"'"+where)
	require.NoError(t, err)
	n, err := strconv.Atoi(rows[0][0])
	require.NoError(t, err)
	return n
}

// waitServerConns waits until serverConns(state) is want; the minute is
// a guard against a hang on a loaded machine, not a measured limit.
func waitServerConns(t *testing.T, state string, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for serverConns(t, state) != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, want, serverConns(t, state))
}

func TestTxClientsShareOneServerConnection(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	require.Equal(t, []string{"1"}, query(t, a, "SELECT 1"))
	require.Equal(t, []string{"2"}, query(t, b, "SELECT 2"))
	pidA := query(t, a, "SELECT pg_backend_pid()")
	require.Equal(t, pidA, query(t, b, "SELECT pg_backend_pid()"), "one server connection serves both")
	require.NotEqual(t, strconv.Itoa(int(a.PID())), pidA[0], "clients are shown a PID issued by sluice")
	require.Equal(t, 1, serverConns(t, ""))
}

// Acceptance 1: pgbench's default TPC-B-like script (BEGIN; three
// UPDATEs, a SELECT and an INSERT; END) in all three protocol modes, 200
// clients over 10 server connections, no failed transaction, never more
// than 10 server connections. At the fixture's scale 1 every transaction
// updates the one pgbench_branches row, so they queue on its lock while
// holding their server connections: none may fail for it.
//
// Each client runs a fixed number of transactions (-t), not a duration
// (-T): pgbench 15 starts the -T clock before its threads open their
// connections one by one, so on a loaded machine where 100 logins per
// thread take longer than -T the run ends with 0 transactions (exit
// status 0, "processed: 0"), which is how this test once failed. A count
// also lets it require that every transaction was processed.
func TestTxPgbench200ClientsOver10Connections(t *testing.T) {
	if testing.Short() {
		t.Skip("long load test")
	}
	h := start(t, txPool(10))
	ctx, cancel := context.WithCancel(context.Background())
	var most, samples, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			rows, err := pgtest.Cluster(t).Query(context.Background(),
				"SELECT count(*) FROM pg_stat_activity WHERE usename = '"+pgtest.AppUser+"'")
			var n int64
			if err == nil {
				n, err = strconv.ParseInt(rows[0][0], 10, 64)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			} else {
				samples.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			out := pgbench(t, h, "-M", mode, "-c", "200", "-j", "2", "-t", "5")
			require.Contains(t, out, "TPC-B", "pgbench ran its default multi-statement script")
			require.Contains(t, out, "number of transactions actually processed: 1000/1000")
			require.Contains(t, out, "query mode: "+mode)
		})
	}
	cancel()
	wg.Wait()
	t.Logf("pg_stat_activity: %d samples, %d failed (first: %v), at most %d sluice connections",
		samples.Load(), failed.Load(), firstErr.Load(), most.Load())
	require.Positive(t, samples.Load(), "no pg_stat_activity sample succeeded: the limit was never checked")
	require.LessOrEqual(t, failed.Load(), samples.Load()/10, "too many pg_stat_activity samples failed (first: %v)", firstErr.Load())
	require.LessOrEqual(t, most.Load(), int64(10), "pg_stat_activity showed more than max_size sluice connections")
	require.Positive(t, most.Load())
}

func TestTxErrorsInsideTransactions(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	_, err := a.Exec(ctx, "BEGIN; SELECT 1/0").ReadAll()
	require.ErrorContains(t, err, "division by zero")
	require.Equal(t, byte('E'), a.TxStatus())
	done := make(chan []string)
	go func() { done <- query(t, b, "SELECT 'b'") }() // waits: a holds the only connection
	time.Sleep(50 * time.Millisecond)
	_, err = a.Exec(ctx, "SELECT 1").ReadAll()
	require.ErrorContains(t, err, "current transaction is aborted")
	query(t, a, "ROLLBACK")
	require.Equal(t, []string{"b"}, <-done)
	require.Equal(t, []string{"ok"}, query(t, a, "SELECT 'ok'"))
}

func TestTxCopyInAndOut(t *testing.T) {
	h := start(t, txPool(2))
	ctx := context.Background()
	c := h.connect(ctx)
	query(t, c, "CREATE TABLE IF NOT EXISTS tx_copy(n int)")
	query(t, c, "TRUNCATE tx_copy")
	var in []byte
	for i := 1; i <= 10000; i++ {
		in = fmt.Appendf(in, "%d\n", i)
	}
	tag, err := c.CopyFrom(ctx, bytesReader(in), "COPY tx_copy FROM STDIN")
	require.NoError(t, err)
	require.EqualValues(t, 10000, tag.RowsAffected())
	var out syncbuf.Buffer
	_, err = c.CopyTo(ctx, &out, "COPY (SELECT sum(n) FROM tx_copy) TO STDOUT")
	require.NoError(t, err)
	require.Equal(t, "50005000\n", out.String())
	query(t, c, "DROP TABLE tx_copy")
}

func TestTxPipelineWithNamedStatements(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	_, err := a.Prepare(ctx, "plus", "SELECT $1::int + 1", nil)
	require.NoError(t, err)
	_, err = b.Prepare(ctx, "plus", "SELECT $1::int + 2", nil) // same client name, other query
	require.NoError(t, err)
	for i := range 20 {
		for c, add := range map[*pgconn.PgConn]int{a: 1, b: 2} {
			batch := &pgconn.Batch{} // ExecBatch consumes it
			batch.ExecPrepared("plus", [][]byte{[]byte(strconv.Itoa(i))}, nil, nil)
			batch.ExecParams("SELECT $1::text", [][]byte{[]byte("x")}, nil, nil, nil)
			batch.ExecPrepared("plus", [][]byte{[]byte("100")}, nil, nil)
			res, err := c.ExecBatch(ctx, batch).ReadAll()
			require.NoError(t, err)
			require.Len(t, res, 3, "%+v", res)
			require.Len(t, res[0].Rows, 1, "%+v %+v %+v", res[0], res[1], res[2])
			require.Equal(t, strconv.Itoa(i+add), string(res[0].Rows[0][0]))
			require.Equal(t, "x", string(res[1].Rows[0][0]))
			require.Equal(t, strconv.Itoa(100+add), string(res[2].Rows[0][0]))
		}
	}
	// Closing a statement makes it unknown to that client only.
	require.NoError(t, a.Deallocate(ctx, "plus"))
	_, err = a.ExecPrepared(ctx, "plus", [][]byte{[]byte("1")}, nil, nil).Close()
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "26000", pe.Code)
	res := b.ExecPrepared(ctx, "plus", [][]byte{[]byte("1")}, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "3", string(res.Rows[0][0]))
	// A second Parse of a name is refused, as PostgreSQL does.
	_, err = b.Prepare(ctx, "plus", "SELECT 1", nil)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "42P05", pe.Code)
	// A failed Parse leaves no statement behind.
	_, err = a.Prepare(ctx, "bad", "SELECT FROM nowhere_at_all", nil)
	require.Error(t, err)
	_, err = a.Prepare(ctx, "bad", "SELECT 'good'", nil)
	require.NoError(t, err)
}

// lib/pq prepares the unnamed statement in one batch and binds it in the
// next, after the connection may have served someone else.
func TestTxUnnamedStatementAcrossBatches(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	_, err := a.Prepare(ctx, "", "SELECT $1::int * 10", nil)
	require.NoError(t, err)
	_, err = b.Prepare(ctx, "", "SELECT $1::text || '!'", nil)
	require.NoError(t, err)
	res := a.ExecPrepared(ctx, "", [][]byte{[]byte("4")}, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "40", string(res.Rows[0][0]))
	res = b.ExecPrepared(ctx, "", [][]byte{[]byte("hi")}, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "hi!", string(res.Rows[0][0]))
}

func TestTxIdleTransactionTimeout(t *testing.T) {
	h := startWith(t, txPool(1), "limits:\n  idle_transaction_timeout: 300ms\n")
	ctx := context.Background()
	c := h.connect(ctx)
	query(t, c, "BEGIN")
	// Not a fixed sleep: on a loaded machine the timeout may fire late.
	// Once the server connection has left the transaction, sluice has
	// acted on the timeout and the client's next statement gets its error.
	waitServerConns(t, "idle in transaction", 0)
	_, err := c.Exec(ctx, "SELECT 1").ReadAll()
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "25P03", pe.Code)
	require.Contains(t, pe.Message, "idle_transaction_timeout")
	require.Equal(t, 0, serverConns(t, "idle in transaction"))
	other := h.connect(ctx) // the connection went back to the pool
	require.Equal(t, []string{"1"}, query(t, other, "SELECT 1"))
}

// docs/transaction-pooling.md: a client whose statement leaves a
// transaction open is disconnected with 0A000 and the transaction rolled
// back. The client's socket is read raw, so that it is sluice, not the
// driver reacting to FATAL, that is seen closing it.
func TestStatementModeRefusesTransactions(t *testing.T) {
	h := start(t, "max_size: 1\n    pool_mode: statement")
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
	hj, err := c.Hijack()
	require.NoError(t, err)
	defer hj.Conn.Close()
	hj.Frontend.Send(&pgproto3.Query{String: "BEGIN"})
	require.NoError(t, hj.Frontend.Flush())
	require.NoError(t, hj.Conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	var refused *pgproto3.ErrorResponse
	for {
		msg, err := hj.Frontend.Receive()
		if err != nil {
			require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "sluice did not disconnect the client")
			break // the connection was closed
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			refused = &pgproto3.ErrorResponse{Severity: m.Severity, Code: m.Code, Message: m.Message}
		case *pgproto3.ReadyForQuery:
			t.Fatalf("ReadyForQuery(%c) after the refused BEGIN: the session went on", m.TxStatus)
		}
	}
	require.NotNil(t, refused, "no error before the disconnect")
	require.Equal(t, "0A000", refused.Code)
	require.Equal(t, "FATAL", refused.Severity)
	require.Contains(t, refused.Message, "pool_mode statement")
	waitServerConns(t, "idle in transaction", 0)
	other := h.connect(ctx)
	require.Equal(t, []string{"1"}, query(t, other, "SELECT 1"))
}

// A client killed inside a transaction leaves no open transaction.
func TestTxClientKilledMidTransaction(t *testing.T) {
	h := start(t, txPool(2))
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	query(t, c, "CREATE TABLE IF NOT EXISTS tx_killed(n int)")
	query(t, c, "BEGIN")
	query(t, c, "INSERT INTO tx_killed VALUES (1)")
	require.Equal(t, 1, serverConns(t, "idle in transaction"))
	c.Conn().Close() // no Terminate: the process died
	// Acceptance 5: sluice itself ends the open transaction. Nothing else
	// would (no other client borrows, idle connections are not involved),
	// so waiting for it on a loaded machine instead of looking once after
	// a second still shows that sluice noticed the kill.
	waitServerConns(t, "idle in transaction", 0)
	other := h.connect(ctx)
	require.Equal(t, []string{"0"}, query(t, other, "SELECT count(*) FROM tx_killed"), "the insert was rolled back")
	query(t, other, "DROP TABLE tx_killed")
}

// The idle-in-transaction timeout after requests answered inline: the
// client goroutine reads the answers to the autocommit statements and to
// the BEGIN itself (the first detaches inline, the BEGIN keeps the
// connection and starts the attachment's reader); the timeout is armed
// all the same and fires.
func TestTxIdleTransactionTimeoutAfterInlineAnswers(t *testing.T) {
	h := startWith(t, txPool(1), "limits:\n  idle_transaction_timeout: 300ms\n")
	ctx := context.Background()
	c := h.connect(ctx)
	for range 3 {
		require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
	}
	query(t, c, "BEGIN")
	require.Equal(t, []string{"2"}, query(t, c, "SELECT 2"))
	waitServerConns(t, "idle in transaction", 0)
	_, err := c.Exec(ctx, "SELECT 1").ReadAll()
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "25P03", pe.Code)
	other := h.connect(ctx) // the connection went back to the pool
	require.Equal(t, []string{"1"}, query(t, other, "SELECT 1"))
}
