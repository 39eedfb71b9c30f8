package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

func TestShutdownEndsLingeringSessionsWith57P01(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer c.Close(ctx)
	query(t, c, "SELECT 1")

	// Shutdown with a deadline already passed: the idle session is ended.
	sctx, cancel := context.WithCancel(ctx)
	cancel()
	h.srv.Shutdown(sctx)

	_, err = c.Exec(ctx, "SELECT 1").ReadAll()
	require.Error(t, err)
	// The 57P01 arrived while the client was idle; pgconn reports it on
	// the next use, either as the error itself or as a closed connection.
	if code := pgCode(err); code != "" {
		require.Equal(t, "57P01", code)
	}
	require.Contains(t, h.logs.String(), "terminating sessions")

	// New clients are refused.
	_, err = pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.Error(t, err)
}

func TestShutdownWaitsForSessionsToFinish(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		h.srv.Shutdown(sctx)
	}()
	// The session still works while shutdown waits for it.
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
	require.NoError(t, c.Close(ctx))
	<-done
}

func TestReloadAddsUsersAndKeepsSessions(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	c := h.connect(ctx)
	c1 := pgtest.Cluster(t)
	require.NoError(t, c1.CreateRole(ctx, "late", "late_pw", "scram-sha-256"))
	require.NoError(t, c1.Exec(ctx, "GRANT CONNECT ON DATABASE appdb TO late"))

	_, err := pgconn.Connect(ctx, h.dsn("late", "late_pw"))
	require.Equal(t, "28P01", pgCode(err))

	text := configText(t, h.sock, "min_size: 0\n      max_size: 5", "  - name: late\n    password: late_pw\n")
	cfg, err := config.Parse([]byte(text+"log:\n  level: debug\n"), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	require.NoError(t, h.srv.Reload(cfg))

	late, err := pgconn.Connect(ctx, h.dsn("late", "late_pw"))
	require.NoError(t, err)
	require.Equal(t, []string{"late"}, query(t, late, "SELECT current_user"))
	late.Close(ctx)
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"), "existing session survives the reload")
}
