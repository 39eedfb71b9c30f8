package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
	"github.com/sluice-proxy/sluice/internal/txpool"
)

// startTxHooked starts a sluice with one transaction-mode pool of one
// connection; hooks sets the engine's test hooks before Start.
func startTxHooked(t *testing.T, hooks func(*txpool.Env)) (*Server, *pgconn.PgConn) {
	s, c, _ := startTxHookedWith(t, 1, "", hooks)
	return s, c
}

// startTxHookedWith is startTxHooked with a pool of maxSize connections
// and a limits section (YAML lines under "limits:", indented by two
// spaces; "" for none); it also returns the log, kept at debug level.
func startTxHookedWith(t *testing.T, maxSize int, limits string, hooks func(*txpool.Env)) (*Server, *pgconn.PgConn, *syncbuf.Buffer) {
	cl := pgtest.Cluster(t)
	if limits != "" {
		limits = "limits:\n" + limits
	}
	text := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
  socket_dir: %s
admin:
  address: ""
%susers:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool_mode: transaction
    pool:
      max_size: %d
`, t.TempDir(), limits, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, cl.Port, maxSize)
	cfg, err := config.ParseWith([]byte(text), func(string) (string, bool) { return "", false }, config.ReadSecretFile)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	s, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	hooks(s.txEnv)
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
	})
	return s, connectTo(t, s), logs
}

func connectTo(t *testing.T, s *Server) *pgconn.PgConn {
	c, err := pgconn.Connect(context.Background(), fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		s.Addr().(*net.TCPAddr).Port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func backendPID(t *testing.T, c *pgconn.PgConn) string {
	res := c.ExecParams(context.Background(), "SELECT pg_backend_pid()", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	return string(res.Rows[0][0])
}

// The inline watch sets a past read deadline on the server socket of an
// answer awaited for a full tick. If it fires while the client goroutine
// has just read the ReadyForQuery and detaches, the deadline must be
// withdrawn before the connection goes back to the pool: left there, the
// next borrower's alive check fails on it and the pool replaces the
// connection (a client's backend changes between two statements over a
// pool of one). The hook fires the watch exactly then, once.
func TestTxInlineWatchRacingADetachLeavesNoDeadlineOnTheConnection(t *testing.T) {
	var armed, fired atomic.Bool
	s, c := startTxHooked(t, func(e *txpool.Env) {
		e.BeforeDetachCheck = func(a txpool.Probe) {
			if armed.CompareAndSwap(true, false) {
				fired.Store(a.FireWatch())
			}
		}
	})
	pid := backendPID(t, c)
	armed.Store(true)
	require.Equal(t, pid, backendPID(t, c))
	require.True(t, fired.Load(), "the hook did not find the answer being read inline")
	require.Eventually(t, func() bool { return s.PoolStats()[0].Idle == 1 }, time.Minute, time.Millisecond)
	for i := range 3 {
		require.Equal(t, pid, backendPID(t, c), "statement %d: the pool's only connection was replaced (dead ones removed: %d)",
			i, s.PoolStats()[0].DeadRemoved)
	}
	require.Zero(t, s.PoolStats()[0].DeadRemoved)
}

// An answer slower than the inline watch's tick is handed to a reader
// goroutine part way; the client still gets every row in order, and the
// connection goes back to the pool after it.
func TestTxSlowAnswerIsHandedToAReaderInOrder(t *testing.T) {
	var readers, inlines atomic.Int32
	s, c := startTxHooked(t, func(e *txpool.Env) {
		e.ReaderStarted = func(txpool.Probe) { readers.Add(1) }
		e.InlineRead = func(txpool.Probe) { inlines.Add(1) }
	})
	ctx := context.Background()
	const rows = 20000
	// The sleep runs first (pg_sleep is volatile: evaluated once, in the
	// subquery), so the answer arrives well after a tick, then in many
	// chunks.
	results, err := c.Exec(ctx, "SELECT 1; SELECT g, repeat('x', 50) FROM (SELECT pg_sleep(0.2)) s, generate_series(1, "+
		strconv.Itoa(rows)+") g; SELECT 3").ReadAll()
	require.NoError(t, err)
	require.Len(t, results, 3)
	require.Equal(t, "1", string(results[0].Rows[0][0]))
	require.Len(t, results[1].Rows, rows)
	for i, r := range results[1].Rows {
		require.Equal(t, strconv.Itoa(i+1), string(r[0]), "row %d out of order", i)
	}
	require.Equal(t, "3", string(results[2].Rows[0][0]))
	require.NotZero(t, readers.Load(), "the slow answer was not handed to a reader")
	require.Eventually(t, func() bool { return s.PoolStats()[0].Idle == 1 }, time.Minute, time.Millisecond)
	// A quick answer outside a transaction is read inline. "Quick" is
	// under the watch's tick, which a loaded machine may miss for one
	// query: wait until one is (each try is a condition, not a timing).
	inline := false
	for range 50 {
		before, inlineBefore := readers.Load(), inlines.Load()
		res := c.ExecParams(ctx, "SELECT 'ok'", nil, nil, nil, nil).Read()
		require.NoError(t, res.Err)
		require.Equal(t, "ok", string(res.Rows[0][0]))
		if inlines.Load() > inlineBefore && readers.Load() == before {
			inline = true
			break
		}
	}
	require.True(t, inline, "no quick answer outside a transaction was read inline in 50 tries")
}

// A client that leaves while its query's answer is awaited inline: the
// inline watch hands the answer to a reader, the client goroutine goes
// back to its socket and sees the client gone, and the server
// connection, its query still running, is closed rather than reused.
// The query sleeps for an hour: were the client goroutine still waiting
// for the answer, the next client (the pool has one connection) would
// wait that long.
func TestTxClientLeavingDuringAnInlineReadClosesTheServerConnection(t *testing.T) {
	s, c := startTxHooked(t, func(*txpool.Env) {})
	ctx := context.Background()
	cl := pgtest.Cluster(t)
	monitor, err := pgconn.Connect(ctx, cl.DSN("postgres", "", "postgres")+" host="+cl.SocketDir)
	require.NoError(t, err)
	defer monitor.Close(ctx)
	pid := backendPID(t, c)
	n, err := strconv.Atoi(pid)
	require.NoError(t, err)
	t.Cleanup(func() { // the sleeping backend must not outlive the test (other tests count backends)
		cctx := context.Background()
		_, err := cl.Query(cctx, "SELECT pg_terminate_backend("+pid+")")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			rows, err := cl.Query(cctx, "SELECT 1 FROM pg_stat_activity WHERE pid = "+pid)
			return err == nil && len(rows) == 0
		}, time.Minute, 10*time.Millisecond)
	})
	// The query goes out over the hijacked socket: pgconn, whose read
	// fails when the socket closes, would send a CancelRequest, and the
	// cancel (not the inline watch) would take the connection out.
	hj, err := c.Hijack()
	require.NoError(t, err)
	q, err := (&pgproto3.Query{String: "SELECT pg_sleep(3600)"}).Encode(nil)
	require.NoError(t, err)
	_, err = hj.Conn.Write(q)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, pgtest.WaitActive(wctx, monitor, uint32(n), "pg_sleep(3600)"))
	hj.Conn.Close() // no Terminate: the process died
	other := connectTo(t, s)
	qctx, qcancel := context.WithTimeout(ctx, time.Minute)
	defer qcancel()
	res := other.ExecParams(qctx, "SELECT pg_backend_pid()", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err, "the next client never got the pool's connection")
	require.NotEqual(t, pid, string(res.Rows[0][0]), "the connection of a query whose client left was reused")
}
