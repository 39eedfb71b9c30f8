package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
	"github.com/sluice-proxy/sluice/internal/txpool"
)

// The client goroutine wakes the attachment when it finds it detachable
// after writing a query; when the attachment sees the same ReadyForQuery
// and detaches on its own first, the wake-up's past read deadline must
// not travel with the connection. On main it did: the next borrower's
// alive check failed on the deadline, the pool closed the connection and
// dialled another, so a client saw its backend change between two
// statements over a pool of one (TestTxEveryPinReasonPinsAndUnpins's
// "a keeps its server connection" under load). The hook holds the
// attachment until the client goroutine has finished its write, which
// is the interleaving a loaded machine produces now and then. A request
// outside a transaction is read inline by the client goroutine (no
// attachment goroutine, no wake-up: TestTxInlineWatchRacingADetach...
// covers that path), so the race is forced on a COMMIT, whose attachment
// goroutine watches the server since the BEGIN.
func TestTxWakeRacingADetachLeavesNoDeadlineOnTheConnection(t *testing.T) {
	cl := pgtest.Cluster(t)
	text := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
  socket_dir: %s
admin:
  address: ""
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool_mode: transaction
    pool:
      max_size: 1
`, t.TempDir(), pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, cl.Port)
	cfg, err := config.ParseWith([]byte(text), func(string) (string, bool) { return "", false }, config.ReadSecretFile)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	s, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	// The hooks force the interleaving once, on the COMMIT: armed on
	// every statement they could deadlock (the attachment waiting for
	// the client goroutine's next write to end while that write waits
	// for its answer; or, outside a transaction, for an answer the
	// client goroutine itself would read).
	var forwardArmed, detachArmed atomic.Bool
	var raced atomic.Bool
	s.txEnv.AfterForward = func(a txpool.Probe) {
		// Only at the forward that carries the COMMIT's Sync: the client
		// goroutine may forward the request in pieces (seen under load),
		// and one without the Sync leaves nothing to wait for.
		if a.Answered() && a.Status() != 'I' || !forwardArmed.CompareAndSwap(true, false) {
			return
		}
		// Let the attachment relay the answer before the client
		// goroutine looks whether to wake it.
		for !a.Answered() {
			runtime.Gosched()
		}
	}
	s.txEnv.BeforeDetachCheck = func(a txpool.Probe) {
		// Only at the COMMIT's ReadyForQuery (status I): the one of the
		// statement before, inside the transaction, may reach this hook
		// after the hooks were armed.
		if a.Status() != 'I' || !detachArmed.CompareAndSwap(true, false) {
			return
		}
		// Wait for the client goroutine to leave forward (it wakes us if
		// it finds the attachment detachable, as it now is).
		for {
			inflight, woken := a.Writing()
			if !inflight {
				raced.Store(woken)
				return
			}
			runtime.Gosched()
		}
	}
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
	})

	ctx := context.Background()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		s.Addr().(*net.TCPAddr).Port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, err)
	defer c.Close(ctx)
	pidOf := func() string {
		res := c.ExecParams(ctx, "SELECT pg_backend_pid()", nil, nil, nil, nil).Read()
		require.NoError(t, res.Err)
		return string(res.Rows[0][0])
	}
	_, err = c.Exec(ctx, "BEGIN").ReadAll()
	require.NoError(t, err)
	pid := pidOf()
	detachArmed.Store(true)
	forwardArmed.Store(true)
	res := c.ExecParams(ctx, "COMMIT", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	// The connection is back in the pool once the attachment detached.
	require.Eventually(t, func() bool { return s.PoolStats()[0].Idle == 1 }, time.Minute, time.Millisecond)
	require.True(t, raced.Load(), "the client goroutine's wake-up did not race the detach")
	for i := range 3 {
		require.Equal(t, pid, pidOf(), "statement %d: the pool's only connection was replaced (dead ones removed: %d)",
			i, s.PoolStats()[0].DeadRemoved)
	}
	require.Zero(t, s.PoolStats()[0].DeadRemoved)
}
