package pgserver

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requireBinaries fails (not skips) when PostgreSQL is missing, unless
// SLUICE_SKIP_PG=1: a silently skipped integration test hides a broken CI.
func requireBinaries(t *testing.T) {
	t.Helper()
	if os.Getenv("SLUICE_SKIP_PG") == "1" {
		t.Skip("SLUICE_SKIP_PG=1")
	}
	_, err := FindBinDir()
	require.NoError(t, err)
}

// parentDir returns a directory the server's OS user can reach even when we
// run as root (t.TempDir's parent is 0700).
func parentDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgserver-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func TestClusterLifecycle(t *testing.T) {
	requireBinaries(t)
	ctx := t.Context()
	parent := parentDir(t)

	began := time.Now()
	c, err := Start(ctx, Options{Dir: parent, Settings: map[string]string{"work_mem": "7MB"}})
	require.NoError(t, err)
	t.Logf("cluster started in %v on port %d (bin %s)", time.Since(began), c.Port, c.BinDir)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.Stop()
		}
	})
	require.Equal(t, "127.0.0.1", c.Host)
	require.NotZero(t, c.Port)
	require.True(t, strings.HasPrefix(c.DataDir, parent+string(filepath.Separator)))

	rows, err := c.Query(ctx, "SHOW work_mem; SHOW max_connections; SHOW fsync; SELECT NULL::text, 'x'")
	require.NoError(t, err)
	require.Equal(t, [][]string{{"7MB"}, {"300"}, {"off"}, {"", "x"}}, rows)

	require.NoError(t, c.CreateRole(ctx, "scram_u", "scr'am pw", "scram-sha-256"))
	require.NoError(t, c.CreateRole(ctx, "md5_u", "md5 pw", "md5"))
	require.NoError(t, c.CreateRole(ctx, "md5_u", "md5 pw", "md5"), "CreateRole is idempotent")
	require.Error(t, c.CreateRole(ctx, "x", "pw", "password"))
	require.NoError(t, c.CreateDatabase(ctx, "db1", "scram_u"))
	require.NoError(t, c.CreateDatabase(ctx, "db1", "scram_u"), "CreateDatabase is idempotent")

	rows, err = c.Query(ctx, `SELECT rolname, CASE WHEN rolpassword LIKE 'SCRAM-SHA-256$%' THEN 'scram'
		WHEN rolpassword LIKE 'md5%' THEN 'md5' END FROM pg_authid WHERE rolname IN ('scram_u','md5_u') ORDER BY 1`)
	require.NoError(t, err)
	require.Equal(t, [][]string{{"md5_u", "md5"}, {"scram_u", "scram"}}, rows)

	for _, tc := range []struct{ user, pw string }{{"scram_u", "scr'am pw"}, {"md5_u", "md5 pw"}} {
		conn, err := pgconn.Connect(ctx, c.DSN(tc.user, tc.pw, "db1"))
		require.NoError(t, err, tc.user)
		res, err := conn.Exec(ctx, "SELECT current_user, inet_server_addr()::text").ReadAll()
		require.NoError(t, err)
		require.Equal(t, tc.user, string(res[0].Rows[0][0]))
		require.Equal(t, "127.0.0.1/32", string(res[0].Rows[0][1]), "connected over TCP")
		require.NoError(t, conn.Close(ctx))

		_, err = pgconn.Connect(ctx, c.DSN(tc.user, "wrong", "db1"))
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, tc.user)
		require.Equal(t, "28P01", pgErr.Code, "invalid_password")
	}

	out, err := c.Pgbench(ctx, "--version")
	require.NoError(t, err)
	require.Contains(t, string(out), "pgbench")
	_, err = c.Pgbench(ctx, "-S", "-t", "1", "db1") // no pgbench tables there
	require.ErrorContains(t, err, "pgbench")

	require.ErrorContains(t, c.Exec(ctx, "SELECT nosuchcolumn"), "nosuchcolumn")

	stopped = true
	require.NoError(t, c.Stop())
	require.NoError(t, c.Stop(), "Stop is idempotent")
	_, err = os.Stat(c.DataDir)
	require.True(t, os.IsNotExist(err), "data dir removed: %v", err)
	_, err = pgconn.Connect(ctx, c.DSN("scram_u", "scr'am pw", "db1"))
	require.Error(t, err, "server is down")
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestStartPortInUse(t *testing.T) {
	requireBinaries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	parent := parentDir(t)
	var log strings.Builder
	_, err = Start(t.Context(), Options{Dir: parent, Port: l.Addr().(*net.TCPAddr).Port, Log: &log})
	require.ErrorIs(t, err, errPortInUse)
	require.ErrorContains(t, err, "server log tail")
	require.Contains(t, log.String(), "Address already in use")
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Empty(t, entries, "failed Start removes its directory")
}

// TestStartRetriesPortClash makes the first picked port a busy one: Start
// must notice the bind failure and retry on another port.
func TestStartRetriesPortClash(t *testing.T) {
	requireBinaries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	picks := 0
	pickPort = func() (int, error) {
		picks++
		if picks == 1 {
			return busy, nil
		}
		return freePort()
	}
	defer func() { pickPort = freePort }()

	c, err := Start(t.Context(), Options{Dir: parentDir(t)})
	require.NoError(t, err)
	defer c.Stop()
	require.Equal(t, 2, picks)
	require.NotEqual(t, busy, c.Port)
	rows, err := c.Query(t.Context(), "SHOW port")
	require.NoError(t, err)
	require.Equal(t, [][]string{{strconv.Itoa(c.Port)}}, rows)
}

func TestStartRejectsBadSettings(t *testing.T) {
	for _, s := range []map[string]string{
		{"port": "5432"},
		{"unix_socket_directories": "/tmp"},
		{"bad name": "x"},
		{"work_mem": "1MB\nfsync = on"},
	} {
		_, err := Start(context.Background(), Options{Settings: s})
		require.Error(t, err, "%v", s)
	}
}

func TestStartUnreachableDirAsRoot(t *testing.T) {
	requireBinaries(t)
	if os.Geteuid() != 0 {
		t.Skip("only root hands the server to another OS user")
	}
	dir := filepath.Join(t.TempDir(), "private") // t.TempDir's parent is 0700 root
	require.NoError(t, os.Mkdir(dir, 0o755))
	_, err := Start(t.Context(), Options{Dir: dir})
	require.ErrorContains(t, err, "not searchable")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestStartCanceled(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parent := parentDir(t)
	_, err := Start(ctx, Options{Dir: parent})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "killed"), "%v", err)
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Empty(t, entries)
}
