package hatest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// A session-mode client idle when the primary dies keeps its sluice
// connection: after the failover its next statement runs on the new
// primary, and a notice says its session state is gone. A client inside a
// transaction gets an error with the SQLSTATE of a lost connection.
func TestSessionModeClientsThroughFailover(t *testing.T) {
	set := pgtest.ReplicaSet(t, 1)
	ctx := context.Background()
	_, port, _ := sluiceMode(t, set, "", "session")
	var notices []string
	cfg, err := pgconn.ParseConfig(dsn(port))
	require.NoError(t, err)
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	idle, err := pgconn.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer idle.Close(ctx)
	inTx, err := pgconn.Connect(ctx, dsn(port))
	require.NoError(t, err)
	defer inTx.Close(ctx)
	_, err = idle.Exec(ctx, "SELECT 1").ReadAll()
	require.NoError(t, err)
	_, err = inTx.Exec(ctx, "BEGIN").ReadAll()
	require.NoError(t, err)

	require.NoError(t, set.Primary.Kill(ctx))
	require.NoError(t, set.Standbys[0].Promote(ctx))

	var res []*pgconn.Result
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err = idle.Exec(ctx, "SELECT pg_is_in_recovery()::text, inet_server_port()::text").ReadAll()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err, "the idle session-mode client could not go on")
	require.False(t, idle.IsClosed())
	require.Equal(t, "false", string(res[0].Rows[0][0]))
	require.Equal(t, itoa(set.Standbys[0].Port), string(res[0].Rows[0][1]), "it runs on the promoted standby")
	require.NotEmpty(t, notices, "the client was told its session state is gone")
	require.Contains(t, notices[0], "continues on a new server connection")

	_, err = inTx.Exec(ctx, "SELECT 1").ReadAll()
	// The error is the backend's own FATAL (57P01 "terminating connection
	// due to unexpected postmaster exit": a killed postmaster's backends
	// send it), relayed by sluice, or 08006 from sluice when the server
	// closes without one; never a silent new connection.
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe, "a client inside a transaction cannot go on, and is told why")
	require.Contains(t, []string{"08006", "57P01"}, pe.Code, "%v", err)
	t.Logf("the client inside a transaction got %v", err)
}

func itoa(n int) string { return strconv.Itoa(n) }
