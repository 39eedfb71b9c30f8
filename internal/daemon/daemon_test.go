package daemon_test

import (
	"context"
	"fmt"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakePeerEnv); mode != "" {
		fakePeer(mode) // started by an upgrade test as the new process
	}
	os.Exit(pgtest.Main(m))
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeConfig(t *testing.T, path string, level string, adminPort int) {
	c := pgtest.Cluster(t)
	text := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
admin:
  address: 127.0.0.1:%d
log:
  level: %s
  format: json
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
`, adminPort, level, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, c.Port)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
}

func get(t *testing.T, url string) (int, string) {
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestDaemonServesMetricsHealthAndReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	adminPort := freePort(t)
	writeConfig(t, path, "info", adminPort)
	d, logs := startDaemonAt(t, path)
	defer d.Shutdown()
	base := fmt.Sprintf("http://127.0.0.1:%d", adminPort)

	// The open files limits are logged, the soft one raised to the hard.
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	require.Equal(t, lim.Max, lim.Cur)
	require.Contains(t, logs.String(), fmt.Sprintf(`"msg":"open files limit","soft":%d,"hard":%d`, lim.Cur, lim.Max))

	code, body := get(t, base+"/healthz")
	require.Equal(t, 200, code)
	require.Equal(t, "ok\n", body)

	ctx := context.Background()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		d.Proxy.Addr().(*net.TCPAddr).Port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	c, err := pgconn.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = c.Exec(ctx, "SELECT 1").ReadAll()
	require.NoError(t, err)

	_, body = get(t, base+"/metrics")
	for _, name := range []string{
		"sluice_client_connections 1", `sluice_server_connections{database="appdb",state="active",user="app"} 1`,
		`sluice_relayed_bytes_total{direction="server_to_client"}`, "sluice_server_connect_attempts_total 1",
		"sluice_server_connect_failures_total 0", "sluice_client_sessions_total 1",
	} {
		require.Contains(t, body, name)
	}
	require.NoError(t, c.Close(ctx))

	// An invalid file is logged and the running config kept.
	require.NoError(t, os.WriteFile(path, []byte("listen: {adress: x}\n"), 0o600))
	d.Reload()
	require.Contains(t, logs.String(), "reload failed; keeping the running configuration")
	require.Contains(t, logs.String(), "listen.adress")

	// A valid one with log level debug takes effect: server reads are logged.
	writeConfig(t, path, "debug", adminPort)
	d.Reload()
	c, err = pgconn.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = c.Exec(ctx, "SELECT 1").ReadAll()
	require.NoError(t, err)
	require.NoError(t, c.Close(ctx))
	require.Contains(t, logs.String(), `"msg":"Received data from database","length":`)
	require.Contains(t, logs.String(), `"msg":"session ended","user":"app","database":"appdb"`)
	require.NotContains(t, logs.String(), pgtest.AppPassword)
}

// startDaemonAt starts a daemon from the config file at path, logging
// into the buffer it returns; the caller stops it.
func startDaemonAt(t *testing.T, path string) (*daemon.Daemon, *syncbuf.Buffer) {
	t.Helper()
	cfg, err := config.Load(path)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	d, err := daemon.Start(cfg, path, logs)
	require.NoError(t, err)
	return d, logs
}
