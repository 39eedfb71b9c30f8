package proxy

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	// The hooks force the interleaving once, on the COMMIT: armed on
	// every statement they could deadlock (the attachment waiting for
	// the client goroutine's next write to end while that write waits
	// for its answer; or, outside a transaction, for an answer the
	// client goroutine itself would read).
	var forwardArmed, detachArmed atomic.Bool
	var raced atomic.Bool
	s, c := startTxHooked(t, func(e *txpool.Env) {
		e.AfterForward = func(a txpool.Probe) {
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
		e.BeforeDetachCheck = func(a txpool.Probe) {
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
	})
	ctx := context.Background()
	pidOf := func() string { return backendPID(t, c) }
	_, err := c.Exec(ctx, "BEGIN").ReadAll()
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
