// Package tlstest tests TLS between clients and sluice end to end: psql
// and pgx through a real sluice in front of the package's PostgreSQL.
package tlstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	certs "github.com/sluice-proxy/sluice/internal/backend/tlstest"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
	"github.com/sluice-proxy/sluice/internal/wire"
)

func TestMain(m *testing.M) {
	// Replaced certificate files must be seen by the very next connection
	// (the default checks at most once a second).
	frontend.TLSReloadInterval = 0
	os.Exit(pgtest.Main(m))
}

type harness struct {
	srv       *proxy.Server
	port      int
	sock      string
	dir       string
	ca        *certs.CA
	cert, key string
	logs      *syncbuf.Buffer
}

// start runs sluice with tls.mode mode and a certificate for localhost and
// 127.0.0.1 issued by a CA made for the test.
func start(t *testing.T, mode string) *harness {
	t.Helper()
	return startWith(t, mode, "")
}

// startWith is start with topLevel YAML appended to the config.
func startWith(t *testing.T, mode, topLevel string) *harness {
	t.Helper()
	c := pgtest.Cluster(t)
	h := &harness{dir: t.TempDir(), sock: t.TempDir(), logs: &syncbuf.Buffer{}}
	h.ca = certs.NewCA(t, h.dir, "clients")
	h.cert, h.key = h.ca.Issue(t, h.dir, "sluice", "localhost", "127.0.0.1")
	cfg, err := config.Parse([]byte(fmt.Sprintf(`listen: {address: "127.0.0.1:0", socket_dir: %q}
admin: {address: ""}
shutdown_timeout: 5s
tls: {mode: %s, cert_file: %q, key_file: %q}
users:
  - {name: %s, password: %s}
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
%s`, h.sock, mode, h.cert, h.key, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, c.Port, topLevel)), nil)
	require.NoError(t, err)
	srv, err := proxy.New(cfg, slog.New(slog.NewTextHandler(h.logs, nil)))
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	h.srv, h.port = srv, srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if t.Failed() {
			t.Logf("sluice log:\n%s", h.logs.String())
		}
	})
	return h
}

func (h *harness) dsn(extra string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s %s", h.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, extra)
}

func psql(t *testing.T, dsn string, cmd string) (string, error) {
	t.Helper()
	out, err := exec.Command("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", cmd, dsn).CombinedOutput()
	return string(out), err
}

func TestRequireRefusesPlainAndServesVerifyFull(t *testing.T) {
	h := start(t, "require")
	out, err := psql(t, h.dsn("sslmode=disable"), "SELECT 1")
	require.Error(t, err)
	require.Contains(t, out, "sluice requires TLS: connect with sslmode=require or stronger")
	require.Contains(t, h.logs.String(), "sqlstate=28000")

	for _, host := range []string{"127.0.0.1", "localhost"} {
		dsn := strings.Replace(h.dsn("sslmode=verify-full sslrootcert="+h.ca.File), "host=127.0.0.1", "host="+host, 1)
		out, err = psql(t, dsn, `\conninfo`)
		require.NoError(t, err, out)
		require.Contains(t, out, "SSL connection (protocol: TLSv1.3")
		out, err = psql(t, dsn, "SELECT 40 + 2")
		require.NoError(t, err, out)
		require.Equal(t, "42", strings.TrimSpace(out))
	}

	// A client that trusts another CA refuses sluice, as it should.
	other := certs.NewCA(t, h.dir, "other")
	out, err = psql(t, h.dsn("sslmode=verify-full sslrootcert="+other.File), "SELECT 1")
	require.Error(t, err)
	require.Contains(t, out, "certificate verify failed")

	// The Unix socket is exempt: libpq never uses TLS there.
	out, err = psql(t, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s", h.sock, h.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB), "SELECT 1")
	require.NoError(t, err, out)
}

func TestReplacedCertificateIsUsedByTheNextConnection(t *testing.T) {
	h := start(t, "require")
	ctx := context.Background()
	old, err := pgconn.Connect(ctx, h.dsn("sslmode=verify-full sslrootcert="+h.ca.File))
	require.NoError(t, err)
	defer old.Close(ctx)

	// Renew from a new CA, to the same file names (written, then renamed).
	renewed := certs.NewCA(t, t.TempDir(), "renewed")
	c, k := renewed.Issue(t, t.TempDir(), "sluice", "localhost", "127.0.0.1")
	for _, f := range [][2]string{{c, h.cert}, {k, h.key}} {
		data, err := os.ReadFile(f[0])
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(f[1]+".new", data, 0o600))
		require.NoError(t, os.Rename(f[1]+".new", f[1]))
	}

	out, err := psql(t, h.dsn("sslmode=verify-full sslrootcert="+renewed.File), "SELECT 1")
	require.NoError(t, err, "the new certificate is served without a restart: %s", out)
	out, err = psql(t, h.dsn("sslmode=verify-full sslrootcert="+h.ca.File), "SELECT 1")
	require.Error(t, err, "the old certificate is no longer served")
	require.Contains(t, out, "certificate verify failed")

	res := old.ExecParams(ctx, "SELECT 'still here'", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err, "sessions made with the old certificate go on")
	require.Equal(t, "still here", string(res.Rows[0][0]))
	require.Contains(t, h.logs.String(), "TLS certificate reloaded")
}

func TestAllowServesBothAndDisableSaysNo(t *testing.T) {
	h := start(t, "allow")
	for _, mode := range []string{"disable", "require"} {
		out, err := psql(t, h.dsn("sslmode="+mode), "SELECT 1")
		require.NoError(t, err, "sslmode=%s: %s", mode, out)
	}
	h = start(t, "disable")
	out, err := psql(t, h.dsn("sslmode=require"), "SELECT 1")
	require.Error(t, err)
	require.Contains(t, out, "server does not support SSL")
	out, err = psql(t, h.dsn("sslmode=prefer"), `\conninfo`)
	require.NoError(t, err, out)
	require.NotContains(t, out, "SSL connection")
}

// The relay reads a *tls.Conn without polling its file descriptor; a big
// result and a cancel (sent in plain text, as libpq and pgx do) must work.
func TestLargeCopyAndCancelOverTLS(t *testing.T) {
	h := start(t, "require")
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, h.dsn("sslmode=verify-full sslrootcert="+h.ca.File))
	require.NoError(t, err)
	defer c.Close(ctx)
	require.NotNil(t, c.Conn().(*tls.Conn))

	var n countWriter
	tag, err := c.CopyTo(ctx, &n, "COPY (SELECT repeat('x', 999) FROM generate_series(1, 20000)) TO STDOUT")
	require.NoError(t, err)
	require.Equal(t, int64(20000), tag.RowsAffected())
	require.Equal(t, int64(20000*1000), int64(n), "20 MB arrived whole")

	cancelled := make(chan error, 1)
	go func() {
		monitor, err := pgconn.Connect(ctx, h.dsn("sslmode=require"))
		if err != nil {
			cancelled <- err
			return
		}
		defer monitor.Close(ctx)
		if err := pgtest.WaitActive(ctx, monitor, c.PID(), "pg_sleep(30)"); err != nil {
			cancelled <- err
			return
		}
		cancelled <- c.CancelRequest(ctx)
	}()
	_, err = c.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
	require.NoError(t, <-cancelled)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "57014", pe.Code)
	res := c.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err, "the session goes on after the cancel")
}

type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }

func TestSecondSSLRequestIsAProtocolViolation(t *testing.T) {
	h := start(t, "require")
	nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(h.port))
	require.NoError(t, err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	require.NoError(t, wire.Write(nc, &pgproto3.SSLRequest{}))
	var b [1]byte
	_, err = io.ReadFull(nc, b[:])
	require.NoError(t, err)
	require.Equal(t, byte('S'), b[0])
	roots := x509.NewCertPool()
	data, err := os.ReadFile(h.ca.File)
	require.NoError(t, err)
	require.True(t, roots.AppendCertsFromPEM(data))
	tc := tls.Client(nc, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	require.NoError(t, tc.Handshake())
	require.NoError(t, wire.Write(tc, &pgproto3.SSLRequest{}))
	typ, body, err := wire.ReadMessage(tc, 1<<16)
	require.NoError(t, err)
	require.Equal(t, byte('E'), typ)
	var er pgproto3.ErrorResponse
	require.NoError(t, er.Decode(body))
	require.Equal(t, "08P01", er.Code)
	require.Contains(t, er.Message, "after TLS was established")
}
