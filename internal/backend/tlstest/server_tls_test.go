package tlstest

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// One PostgreSQL with ssl = on for the package, its certificate issued by
// goodCA for localhost and 127.0.0.1; wrongCA signed nothing it serves.
var (
	cluster *pgserver.Cluster
	goodCA  *CA
	wrongCA *CA
)

const (
	role     = "tlsuser"
	password = "tls_pw"
)

func TestMain(m *testing.M) {
	if os.Getenv("SLUICE_SKIP_PG") == "1" {
		os.Exit(m.Run())
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlstest:", err)
		code = 1
	}
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "tlstest: goroutine leak:", err)
		code = 1
	}
	os.Exit(code)
}

// run writes the certificates where the server (which runs as the postgres
// OS user when we are root) can read them, starts the cluster and runs the
// tests.
func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "sluice-tls-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	t := Must
	goodCA = NewCA(t, dir, "good")
	wrongCA = NewCA(t, dir, "wrong")
	cert, key := goodCA.Issue(t, dir, "postgres-server", "localhost", "127.0.0.1")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return 0, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, f := range []string{cert, key} {
			if err := os.Chown(f, uid, gid); err != nil {
				return 0, err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err = pgserver.Start(ctx, pgserver.Options{Log: os.Stderr, Settings: map[string]string{
		"ssl": "on", "ssl_cert_file": cert, "ssl_key_file": key, "ssl_ca_file": goodCA.File, // asks for client certificates
	}})
	if err != nil {
		return 0, err
	}
	defer cluster.Stop()
	if err := cluster.CreateRole(ctx, role, password, "scram-sha-256"); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func options(t *testing.T, host string, st config.ServerTLS) backend.Options {
	t.Helper()
	if cluster == nil {
		t.Skip("SLUICE_SKIP_PG=1")
	}
	h, err := config.ParseHost(fmt.Sprintf("%s:%d", host, cluster.Port))
	require.NoError(t, err)
	return backend.Options{Network: h.Network, Address: h.Address, Display: h.Display,
		User: role, Password: password, Database: "postgres", DialTimeout: 10 * time.Second,
		Retries: 2, TLS: backend.TLSOptionsFor(st, h)}
}

// usesTLS asks the server itself whether this session is encrypted.
func usesTLS(t *testing.T, c *backend.Conn) bool {
	t.Helper()
	_, isTLS := c.Conn.(*tls.Conn)
	ssl := queryOne(t, c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	require.Equal(t, isTLS, ssl == "t", "sluice and the server disagree about TLS")
	return isTLS
}

// queryOne runs sql and returns the first column of its last row.
func queryOne(t *testing.T, c *backend.Conn, sql string) string {
	t.Helper()
	require.NoError(t, c.Send(&pgproto3.Query{String: sql}))
	var val string
	for {
		msg, err := c.Receive()
		require.NoError(t, err)
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			val = string(m.Values[0])
		case *pgproto3.ErrorResponse:
			t.Fatalf("%s: %s", sql, m.Message)
		case *pgproto3.ReadyForQuery:
			return val
		}
	}
}

func TestServerTLSModes(t *testing.T) {
	for _, tc := range []struct {
		host string
		st   config.ServerTLS
		tls  bool
	}{
		{"127.0.0.1", config.ServerTLS{Mode: config.ServerTLSDisable}, false},
		{"127.0.0.1", config.ServerTLS{Mode: config.ServerTLSPrefer}, true},
		{"127.0.0.1", config.ServerTLS{Mode: config.ServerTLSRequire}, true},
		{"127.0.0.1", config.ServerTLS{Mode: config.ServerTLSRequire, CAFile: goodCA.File}, true},
		{"127.0.0.1", config.ServerTLS{Mode: config.ServerTLSVerifyCA, CAFile: goodCA.File}, true},
		{"127.0.0.1", config.ServerTLS{Mode: config.ServerTLSVerifyFull, CAFile: goodCA.File}, true},
		{"localhost", config.ServerTLS{Mode: config.ServerTLSVerifyFull, CAFile: goodCA.File}, true},
	} {
		t.Run(tc.host+"/"+tc.st.Mode.String(), func(t *testing.T) {
			c, err := backend.Dial(context.Background(), options(t, tc.host, tc.st))
			require.NoError(t, err)
			defer c.Close()
			require.Equal(t, tc.tls, usesTLS(t, c))
			require.True(t, c.Alive())
			// The connection survives a reset like any other.
			require.NoError(t, c.Reset(context.Background(), 'I'))
			require.Equal(t, tc.tls, usesTLS(t, c))
		})
	}
}

func TestServerTLSWrongCAFailsClearlyWithoutRetries(t *testing.T) {
	for _, mode := range []config.ServerTLSMode{config.ServerTLSVerifyCA, config.ServerTLSVerifyFull, config.ServerTLSRequire} {
		t.Run(mode.String(), func(t *testing.T) {
			o := options(t, "127.0.0.1", config.ServerTLS{Mode: mode, CAFile: wrongCA.File})
			attempts := 0
			o.Attempted = func(error) { attempts++ }
			_, err := backend.Dial(context.Background(), o)
			var te *backend.TLSError
			require.ErrorAs(t, err, &te)
			require.ErrorContains(t, err, "server_tls.mode "+mode.String()+": the server's certificate could not be verified")
			require.ErrorContains(t, err, "certificate signed by unknown authority")
			require.ErrorContains(t, err, "could not connect to server 127.0.0.1:")
			require.Equal(t, 1, attempts, "a verification failure is not retried")
		})
	}
}

func TestServerTLSVerifyFullChecksTheHostName(t *testing.T) {
	o := options(t, "127.0.0.1", config.ServerTLS{Mode: config.ServerTLSVerifyFull, CAFile: goodCA.File})
	o.TLS.ServerName = "db.example.com" // as if the host had been named so
	_, err := backend.Dial(context.Background(), o)
	require.ErrorContains(t, err, "server_tls.mode verify-full: the server's certificate could not be verified")
	require.ErrorContains(t, err, "db.example.com")

	o.TLS.Mode = config.ServerTLSVerifyCA // verify-ca does not look at the name
	c, err := backend.Dial(context.Background(), o)
	require.NoError(t, err)
	defer c.Close()
	require.True(t, usesTLS(t, c))
}

func TestServerTLSClientCertificateIsPresented(t *testing.T) {
	dir := t.TempDir()
	cert, key := goodCA.Issue(t, dir, role, role)
	c, err := backend.Dial(context.Background(), options(t, "127.0.0.1",
		config.ServerTLS{Mode: config.ServerTLSVerifyFull, CAFile: goodCA.File, CertFile: cert, KeyFile: key}))
	require.NoError(t, err)
	defer c.Close()
	clientDN := queryOne(t, c, "SELECT coalesce(client_dn, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	require.Equal(t, "/CN="+role, clientDN, "the server saw sluice's client certificate")
}

// Unix sockets never use TLS, even when the server has it on.
func TestServerTLSPreferOverUnixSocketIsPlain(t *testing.T) {
	if cluster == nil {
		t.Skip("SLUICE_SKIP_PG=1")
	}
	h, err := config.ParseHost(filepath.Clean(cluster.SocketDir) + ":" + strconv.Itoa(cluster.Port))
	require.NoError(t, err)
	o := backend.Options{Network: h.Network, Address: h.Address, Display: h.Display,
		User: role, Password: password, Database: "postgres", TLS: backend.TLSOptionsFor(config.ServerTLS{Mode: config.ServerTLSPrefer}, h)}
	c, err := backend.Dial(context.Background(), o)
	require.NoError(t, err)
	defer c.Close()
	require.False(t, usesTLS(t, c))
}
