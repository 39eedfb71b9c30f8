package backend_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// TestPreferFallsBackToPlain: the package's cluster has ssl = off, so it
// answers the SSLRequest with 'N' and prefer logs in without TLS.
func TestPreferFallsBackToPlain(t *testing.T) {
	o := opts(t, pgtest.AppUser, pgtest.AppPassword)
	o.TLS = backend.TLSOptions{Mode: config.ServerTLSPrefer}
	c := dial(t, o)
	require.NotZero(t, c.PID)
	_, isTLS := c.Conn.(*tls.Conn)
	require.False(t, isTLS)

	o.TLS.Mode = config.ServerTLSRequire
	o.Retries = 3
	attempts := 0
	o.Attempted = func(error) { attempts++ }
	_, err := backend.Dial(context.Background(), o)
	var te *backend.TLSError
	require.ErrorAs(t, err, &te)
	require.ErrorContains(t, err, "server_tls.mode require: the server does not support TLS (it has ssl = off)")
	require.Equal(t, 1, attempts, "not retried")
}

// fakeServer accepts one connection, reads the first startup packet and
// answers it with answer; it reports the request code it got and the
// code of the next packet, if any.
func fakeServer(t *testing.T, network, addr string, answer []byte) (string, <-chan [2]uint32) {
	t.Helper()
	l, err := net.Listen(network, addr)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	got := make(chan [2]uint32, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- [2]uint32{}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var codes [2]uint32
		for i := range codes {
			st, err := frontend.ReadStartup(c, 10000)
			if err != nil {
				break
			}
			switch st.Kind {
			case frontend.KindSSL:
				codes[i] = frontend.CodeSSL
				c.Write(answer)
				if len(answer) > 0 && answer[0] == 'N' {
					continue
				}
				io.Copy(io.Discard, c)
			case frontend.KindStartup:
				codes[i] = st.Protocol
				buf, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28000", Message: "no"}).Encode(nil)
				c.Write(buf)
			}
			break
		}
		got <- codes
	}()
	return l.Addr().String(), got
}

func TestSSLRequestIsSentFirstOnlyOverTCP(t *testing.T) {
	addr, got := fakeServer(t, "tcp", "127.0.0.1:0", []byte{'N'})
	o := backend.Options{Network: "tcp", Address: addr, Display: addr, User: "app", Database: "appdb", TLS: backend.TLSOptions{Mode: config.ServerTLSPrefer}}
	_, err := backend.Dial(context.Background(), o)
	var se *backend.ServerError
	require.ErrorAs(t, err, &se, "after 'N', prefer sends the StartupMessage in plain text")
	require.Equal(t, [2]uint32{frontend.CodeSSL, frontend.Protocol30}, <-got)

	sock := filepath.Join(t.TempDir(), ".s.PGSQL.5432")
	_, got = fakeServer(t, "unix", sock, nil)
	o = backend.Options{Network: "unix", Address: sock, Display: sock, User: "app", Database: "appdb", TLS: backend.TLSOptions{Mode: config.ServerTLSPrefer}}
	_, err = backend.Dial(context.Background(), o)
	require.ErrorAs(t, err, &se)
	require.Equal(t, [2]uint32{frontend.Protocol30, 0}, <-got, "no SSLRequest on a Unix socket")

	addr, _ = fakeServer(t, "tcp", "127.0.0.1:0", []byte{'E'})
	o = backend.Options{Network: "tcp", Address: addr, Display: addr, User: "app", Database: "appdb", TLS: backend.TLSOptions{Mode: config.ServerTLSRequire}}
	_, err = backend.Dial(context.Background(), o)
	require.ErrorContains(t, err, `answered SSLRequest with 'E'`)
}

func TestTLSOptionsFor(t *testing.T) {
	h, err := config.ParseHost("db.internal:5433")
	require.NoError(t, err)
	st := config.ServerTLS{Mode: config.ServerTLSVerifyFull, CAFile: "ca.pem", CertFile: "c", KeyFile: "k"}
	require.Equal(t, backend.TLSOptions{Mode: config.ServerTLSVerifyFull, CAFile: "ca.pem", CertFile: "c", KeyFile: "k", ServerName: "db.internal"},
		backend.TLSOptionsFor(st, h))
	h, err = config.ParseHost("[::1]:5432")
	require.NoError(t, err)
	require.Equal(t, "::1", backend.TLSOptionsFor(st, h).ServerName)
	h, err = config.ParseHost("/run/pg:5432")
	require.NoError(t, err)
	require.Equal(t, "", backend.TLSOptionsFor(st, h).ServerName)
}

func TestTLSFileErrorsAreNotRetried(t *testing.T) {
	addr, _ := fakeServer(t, "tcp", "127.0.0.1:0", []byte{'S'})
	dir := t.TempDir()
	for _, tc := range []struct {
		tls  backend.TLSOptions
		want string
	}{
		{backend.TLSOptions{Mode: config.ServerTLSVerifyCA, CAFile: dir + "/missing.pem"}, "server_tls.mode verify-ca: server_tls.ca_file: open"},
		{backend.TLSOptions{Mode: config.ServerTLSVerifyFull}, "server_tls.ca_file is required"},
		{backend.TLSOptions{Mode: config.ServerTLSRequire, CertFile: dir + "/c.pem", KeyFile: dir + "/k.pem"}, "server_tls.cert_file/key_file: open"},
	} {
		attempts := 0
		o := backend.Options{Network: "tcp", Address: addr, Display: addr, User: "app", Database: "appdb", TLS: tc.tls,
			Retries: 3, Attempted: func(error) { attempts++ }}
		_, err := backend.Dial(context.Background(), o)
		require.ErrorContains(t, err, tc.want)
		require.Equal(t, 1, attempts)
	}
}
