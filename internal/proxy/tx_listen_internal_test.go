package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// The past read deadline that wakes a listening client for a
// notification lands after the client took the notification (its flag
// is set first; the hook forces the late landing): the client must see
// a wake-up, not its client_idle_timeout, and go on.
func TestTxListenLateWakeIsNotAnIdleTimeout(t *testing.T) {
	cl := pgtest.Cluster(t)
	text := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
  socket_dir: %s
admin:
  address: ""
limits:
  client_idle_timeout: 1h
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool_mode: transaction
    pool:
      max_size: 2
`, t.TempDir(), pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, cl.Port)
	cfg, err := config.ParseWith([]byte(text), func(string) (string, bool) { return "", false }, config.ReadSecretFile)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	s, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	var late atomic.Int32
	s.txEnv.NotificationsDelivered = func(lateWake func()) {
		if late.Add(1) == 1 {
			lateWake()
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
	a, b := connectTo(t, s), connectTo(t, s)
	_, err = a.Exec(ctx, "LISTEN tx_late_wake").ReadAll()
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
