package proxy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/txpool"
)

// The past read deadline that wakes a listening client for a
// notification lands after the client took the notification (its flag
// is set first; the hook forces the late landing): the client must see
// a wake-up, not its client_idle_timeout, and go on.
func TestTxListenLateWakeIsNotAnIdleTimeout(t *testing.T) {
	var late atomic.Int32
	s, a, logs := startTxHookedWith(t, 2, "  client_idle_timeout: 1h\n", func(e *txpool.Env) {
		e.NotificationsDelivered = func(lateWake func()) {
			if late.Add(1) == 1 {
				lateWake()
			}
		}
	})
	ctx := context.Background()
	b := connectTo(t, s)
	_, err := a.Exec(ctx, "LISTEN tx_late_wake").ReadAll()
	require.NoError(t, err)
	_, err = b.Exec(ctx, "NOTIFY tx_late_wake, 'one'").ReadAll()
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, time.Minute) // a guard against a hang
	defer cancel()
	require.NoError(t, a.WaitForNotification(wctx))
	require.Eventually(t, func() bool { return late.Load() >= 1 }, time.Minute, time.Millisecond)
	res, err := a.Exec(ctx, "SELECT 1").ReadAll()
	require.NoError(t, err, "the client goes on: no client_idle_timeout")
	require.Equal(t, "1", string(res[0].Rows[0][0]))
	require.NotContains(t, logs.String(), "client_idle_timeout")
}
