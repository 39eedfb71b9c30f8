package pgtest

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestReplicaSet: a primary with two standbys on distinct ports, fixtures
// replicated, and the monitoring role able to see replication state and to
// promote a standby (what failover.user needs).
func TestReplicaSet(t *testing.T) {
	began := time.Now()
	s := ReplicaSet(t, 2)
	t.Logf("primary + 2 standbys in %v", time.Since(began).Round(time.Millisecond))
	ctx := t.Context()
	require.Len(t, s.Standbys, 2)
	require.Len(t, s.All(), 3)
	ports := map[int]bool{}
	for i, c := range s.All() {
		ports[c.Port] = true
		rec, err := c.InRecovery(ctx)
		require.NoError(t, err)
		require.Equal(t, i > 0, rec, "server %d", i)
		conn, err := pgconn.Connect(ctx, c.DSN(MonitorUser, MonitorPassword, AppDB))
		require.NoError(t, err, "server %d", i)
		res, err := conn.Exec(ctx, "SELECT current_user, (SELECT count(*) FROM pg_stat_wal_receiver WHERE received_tli IS NOT NULL)").ReadAll()
		require.NoError(t, err)
		require.Equal(t, MonitorUser, string(res[0].Rows[0][0]))
		if i > 0 {
			require.Equal(t, "1", string(res[0].Rows[0][1]), "pg_monitor sees the wal receiver's details")
		}
		require.NoError(t, conn.Close(ctx))
	}
	require.Len(t, ports, 3)

	conn, err := pgconn.Connect(ctx, s.Standbys[1].DSN(MonitorUser, MonitorPassword, AppDB))
	require.NoError(t, err)
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, "SELECT pg_promote(true, 60)").ReadAll()
	require.NoError(t, err)
	require.Equal(t, "t", string(res[0].Rows[0][0]))
	rec, err := s.Standbys[1].InRecovery(ctx)
	require.NoError(t, err)
	require.False(t, rec, "the monitoring role promoted the standby")
}
