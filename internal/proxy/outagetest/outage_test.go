// Package outagetest runs sluice while PostgreSQL is down. It starts its
// own cluster late, so it lives apart from the proxy package's tests,
// which share one cluster started in TestMain.
package outagetest

import (
	"context"
	"fmt"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSluiceStartsWhilePostgresIsDownAndServesOnceItIsUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	// The throwaway cluster trusts the postgres role over TCP, so no role
	// has to exist before the first login attempt reaches it.
	cfg, err := config.Parse([]byte(fmt.Sprintf(`listen: {address: "127.0.0.1:0"}
admin: {address: ""}
users:
  - {name: postgres, password: pw}
databases:
  postgres:
    hosts: ["127.0.0.1:%d"]
    pool: {min_size: 1, max_size: 4}
    backend: {retries: 10, backoff: 200ms, backoff_multiplier: 1.5}
`, port)), nil)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	srv, err := proxy.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	require.NoError(t, srv.Start(), "the listener comes up with PostgreSQL down")
	defer srv.Shutdown(context.Background())

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "attempt=2") }, 30*time.Second, 20*time.Millisecond,
		"numbered attempts are logged:\n%s", logs)

	cluster, err := pgserver.Start(context.Background(), pgserver.Options{Port: port})
	require.NoError(t, err)
	defer cluster.Stop()

	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=pw dbname=postgres sslmode=disable", srv.Addr().(*net.TCPAddr).Port)
	c, err := pgconn.Connect(context.Background(), dsn)
	require.NoError(t, err, "log:\n%s", logs)
	res, err := c.Exec(context.Background(), "SELECT 42").ReadAll()
	require.NoError(t, err)
	require.Equal(t, "42", string(res[0].Rows[0][0]))
	require.NoError(t, c.Close(context.Background()))
	require.Contains(t, logs.String(), "server connection attempt failed")
	require.Contains(t, logs.String(), "next_wait=")
}
