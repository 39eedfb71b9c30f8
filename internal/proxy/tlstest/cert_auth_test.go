package tlstest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	certs "github.com/sluice-proxy/sluice/internal/backend/tlstest"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// startCert runs sluice with tls.mode allow, tls.client_ca_file set to a
// CA made for the test, and user app on auth method cert (no password;
// sluice logs in to PostgreSQL with server_password). A second user,
// md5user, keeps its password, to show cert is per user. burst is
// limits.auth_failure_burst.
func startCert(t *testing.T, burst int) *harness {
	t.Helper()
	c := pgtest.Cluster(t)
	h := &harness{dir: t.TempDir(), sock: t.TempDir(), logs: &syncbuf.Buffer{}}
	h.ca = certs.NewCA(t, h.dir, "sluice")
	h.cert, h.key = h.ca.Issue(t, h.dir, "sluice", "localhost", "127.0.0.1")
	cfg, err := config.Parse([]byte(fmt.Sprintf(`listen: {address: "127.0.0.1:0", socket_dir: %q}
admin: {address: ""}
shutdown_timeout: 5s
tls: {mode: allow, cert_file: %q, key_file: %q, client_ca_file: %q}
limits: {auth_failure_burst: %d}
users:
  - {name: %s, auth_method: cert, server_password: %s}
  - {name: %s, password: %s, auth_method: md5}
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
`, h.sock, h.cert, h.key, h.ca.File, burst, pgtest.AppUser, pgtest.AppPassword, pgtest.MD5User, pgtest.MD5Password, pgtest.AppDB, c.Port)), nil)
	require.NoError(t, err)
	srv, err := proxy.New(cfg, slog.New(slog.NewTextHandler(h.logs, nil)))
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	h.port = srv.Addr().(*net.TCPAddr).Port
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

// certDSN connects as user over verified TLS, presenting certFile/keyFile
// when they are not "".
func (h *harness) certDSN(user, certFile, keyFile string) string {
	s := fmt.Sprintf("host=localhost port=%d user=%s dbname=%s sslmode=verify-full sslrootcert=%s", h.port, user, pgtest.AppDB, h.ca.File)
	if certFile != "" {
		s += fmt.Sprintf(" sslcert=%s sslkey=%s", certFile, keyFile)
	}
	return s
}

func pgErr(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "want a PostgreSQL error, got %v", err)
	return pe
}

func TestCertAuth(t *testing.T) {
	h := startCert(t, 3)
	ctx := context.Background()
	clientDir := t.TempDir()
	appCert, appKey := h.ca.Issue(t, clientDir, pgtest.AppUser)
	otherCert, otherKey := h.ca.Issue(t, clientDir, "other")

	// A certificate from the CA with CN = app logs in, with psql and pgx,
	// and PostgreSQL sees user app.
	out, err := psql(t, h.certDSN(pgtest.AppUser, appCert, appKey), "SELECT current_user")
	require.NoError(t, err, out)
	require.Equal(t, pgtest.AppUser, strings.TrimSpace(out))
	c, err := pgconn.Connect(ctx, h.certDSN(pgtest.AppUser, appCert, appKey))
	require.NoError(t, err)
	res := c.ExecParams(ctx, "SELECT current_user", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, pgtest.AppUser, string(res.Rows[0][0]))
	require.NoError(t, c.Close(ctx))

	// The md5 user still logs in with its password, certificate or not.
	md5DSN := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=require", h.port, pgtest.MD5User, pgtest.MD5Password, pgtest.AppDB)
	out, err = psql(t, md5DSN, "SELECT 1")
	require.NoError(t, err, out)

	// Over TLS without a certificate: refused with 28000.
	_, err = pgconn.Connect(ctx, h.certDSN(pgtest.AppUser, "", ""))
	pe := pgErr(t, err)
	require.Equal(t, "28000", pe.Code)
	require.Equal(t, "connection requires a valid client certificate", pe.Message)
	out, err = psql(t, h.certDSN(pgtest.AppUser, "", ""), "SELECT 1")
	require.Error(t, err)
	require.Contains(t, out, "connection requires a valid client certificate")

	// A valid certificate for another name: refused like PostgreSQL does.
	_, err = pgconn.Connect(ctx, h.certDSN(pgtest.AppUser, otherCert, otherKey))
	pe = pgErr(t, err)
	require.Equal(t, "28000", pe.Code)
	require.Equal(t, `certificate authentication failed for user "app"`, pe.Message)
	require.Contains(t, h.logs.String(), "cn=other")

	// These three failures used up auth_failure_burst (3): the next
	// attempt from this address is refused before any check, even with
	// the right certificate.
	_, err = pgconn.Connect(ctx, h.certDSN(pgtest.AppUser, appCert, appKey))
	pe = pgErr(t, err)
	require.Equal(t, "28000", pe.Code)
	require.Contains(t, pe.Message, "too many failed logins")
}

func TestCertAuthRefusals(t *testing.T) {
	h := startCert(t, 10)
	ctx := context.Background()
	clientDir := t.TempDir()
	appCert, appKey := h.ca.Issue(t, clientDir, pgtest.AppUser)
	stranger := certs.NewCA(t, clientDir, "stranger")
	strangerCert, strangerKey := stranger.Issue(t, t.TempDir(), pgtest.AppUser)

	// A certificate with CN = app from a CA sluice does not trust fails
	// the TLS handshake itself.
	_, err := pgconn.Connect(ctx, h.certDSN(pgtest.AppUser, strangerCert, strangerKey))
	require.Error(t, err)
	require.Contains(t, err.Error(), "certificate")

	// Plain text (TLS is only allowed) and the Unix socket carry no
	// certificate: refused.
	plain := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", h.port, pgtest.AppUser, pgtest.AppDB)
	_, err = pgconn.Connect(ctx, plain)
	pe := pgErr(t, err)
	require.Equal(t, "28000", pe.Code)
	require.Equal(t, "connection requires a valid client certificate", pe.Message)
	sock := fmt.Sprintf("host=%s port=%d user=%s dbname=%s", h.sock, h.port, pgtest.AppUser, pgtest.AppDB)
	_, err = pgconn.Connect(ctx, sock)
	require.Equal(t, "28000", pgErr(t, err).Code)

	// md5user has a password, not method cert: its certificate is not
	// enough (CN = md5user), the password is what counts.
	md5Cert, md5Key := h.ca.Issue(t, clientDir, pgtest.MD5User)
	_, err = pgconn.Connect(ctx, h.certDSN(pgtest.MD5User, md5Cert, md5Key)+" password=wrong")
	require.Equal(t, "28P01", pgErr(t, err).Code)

	// The right certificate still works after the refusals above.
	c, err := pgconn.Connect(ctx, h.certDSN(pgtest.AppUser, appCert, appKey))
	require.NoError(t, err)
	require.NoError(t, c.Close(ctx))
}
