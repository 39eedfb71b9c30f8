package hatest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// The LISTEN fan-out's listener connection follows the primary: after a
// switchover it leaves the old primary (fenced, still running) and
// LISTENs on the new one, so a NOTIFY sent through sluice afterwards
// (which runs on the new primary) reaches the transaction-pooled
// listening client, which noticed nothing.
func TestListenerFollowsSwitchover(t *testing.T) {
	set := pgtest.ReplicaSet(t, 1)
	ctx := context.Background()
	srv, port, _ := sluiceFor(t, set, "")
	oldHost, newHost := hostName(set.Primary.Port), hostName(set.Standbys[0].Port)
	waitFor(t, "sluice to see the primary and the standby", func() bool {
		hs := hostViews(t, srv, pgtest.AppDB)
		return hs[oldHost].role == "primary" && hs[newHost].role == "standby"
	})
	listener, err := pgconn.Connect(ctx, dsn(port))
	require.NoError(t, err)
	defer listener.Close(ctx)
	_, err = listener.Exec(ctx, "LISTEN ha_listen").ReadAll()
	require.NoError(t, err)

	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	require.NoError(t, srv.Switchover(sctx, pgtest.AppDB, ""))
	cancel()
	waitFor(t, "the listener connection on the new primary", func() bool {
		rows, err := set.Standbys[0].Query(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = '`+pgtest.AppUser+`' AND query LIKE 'LISTEN "%'`)
		require.NoError(t, err)
		return rows[0][0] == "1"
	})

	notifier, err := pgconn.Connect(ctx, dsn(port))
	require.NoError(t, err)
	defer notifier.Close(ctx)
	_, err = notifier.Exec(ctx, "NOTIFY ha_listen, 'after the switchover'").ReadAll()
	require.NoError(t, err)
	wctx, wcancel := context.WithTimeout(ctx, time.Minute) // a guard against a hang
	defer wcancel()
	require.NoError(t, listener.WaitForNotification(wctx))
	_, err = listener.Exec(ctx, "SELECT 1").ReadAll()
	require.NoError(t, err, "the listening client goes on")
}
