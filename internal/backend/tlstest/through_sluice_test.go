package tlstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/sluicetest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// startSluice runs a whole sluice in front of the package's TLS-enabled
// PostgreSQL with databases.postgres.server_tls set to serverTLS (a YAML
// flow mapping), so that what the client sees is what an operator's
// config produces, not what backend.Dial returns. It returns a DSN for
// the client side (plain TCP, SCRAM) and sluice's log.
func startSluice(t *testing.T, serverTLS string) (string, *syncbuf.Buffer) {
	t.Helper()
	if cluster == nil {
		t.Skip("SLUICE_SKIP_PG=1")
	}
	srv, _, logs := sluicetest.Start(t, fmt.Sprintf(`listen: {address: "127.0.0.1:0"}
admin: {address: ""}
shutdown_timeout: 5s
users:
  - {name: %s, password: %s}
databases:
  postgres:
    hosts: ["127.0.0.1:%d"]
    pool: {min_size: 0}
    server_tls: %s
`, role, password, cluster.Port, serverTLS), nil)
	port := srv.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable", port, role, password), logs
}

func TestServerTLSVerifyFullThroughSluice(t *testing.T) {
	ctx := context.Background()
	dsn, _ := startSluice(t, fmt.Sprintf("{mode: verify-full, ca_file: %q}", goodCA.File))
	c, err := pgconn.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	res := c.ExecParams(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "t", string(res.Rows[0][0]), "the server sees sluice's connection encrypted")
}

func TestServerTLSWrongCAThroughSluiceIs08006(t *testing.T) {
	ctx := context.Background()
	dsn, logs := startSluice(t, fmt.Sprintf("{mode: verify-full, ca_file: %q}", wrongCA.File))
	_, err := pgconn.Connect(ctx, dsn)
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "want a PostgreSQL error, got %v", err)
	require.Equal(t, "08006", pe.Code, "%v", err)
	require.Contains(t, pe.Message, "server_tls.mode verify-full: the server's certificate could not be verified")
	require.Contains(t, pe.Message, "certificate signed by unknown authority")
	require.Contains(t, logs.String(), "certificate signed by unknown authority", "the log says why too")
}
