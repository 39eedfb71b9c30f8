package frontend

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend/tlstest"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

type tlsFixture struct {
	dir       string
	ca        *tlstest.CA
	cert, key string
	cfg       config.TLS
}

func newTLSFixture(t *testing.T) *tlsFixture {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "clients")
	cert, key := ca.Issue(t, dir, "server", "localhost", "127.0.0.1")
	return &tlsFixture{dir: dir, ca: ca, cert: cert, key: key,
		cfg: config.TLS{Mode: config.TLSRequire, CertFile: cert, KeyFile: key, MinVersion: config.TLS12}}
}

// handshake runs Upgrade on the server end of a loopback TCP connection
// and a client handshake with cc on the other; it returns the server's
// leaf certificate as the client saw it, and both errors.
func handshake(t *testing.T, tt *TLS, cc *tls.Config) (*x509.Certificate, error, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc, err := tt.Upgrade(c)
		if err == nil {
			_, err = tc.Write([]byte("ok"))
		}
		srvErr <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err = c.Read(b[:])
	require.NoError(t, err)
	require.Equal(t, byte('S'), b[0])
	tc := tls.Client(c, cc)
	cerr := tc.Handshake()
	var leaf *x509.Certificate
	if cerr == nil {
		leaf = tc.ConnectionState().PeerCertificates[0]
		var ok [2]byte
		_, cerr = tc.Read(ok[:])
	}
	c.Close() // a failed client must not leave the server waiting
	return leaf, cerr, <-srvErr
}

func (f *tlsFixture) client() *tls.Config {
	pool, err := loadCAs(f.ca.File)
	if err != nil {
		panic(err)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

func TestTLSUpgradeVerifiesAgainstCA(t *testing.T) {
	f := newTLSFixture(t)
	tt, err := NewTLS(f.cfg, nil)
	require.NoError(t, err)
	leaf, cerr, serr := handshake(t, tt, f.client())
	require.NoError(t, cerr)
	require.NoError(t, serr)
	require.Equal(t, "server", leaf.Subject.CommonName)

	// By IP, as psql host=127.0.0.1 sslmode=verify-full checks it.
	cc := f.client()
	cc.ServerName = "127.0.0.1"
	_, cerr, serr = handshake(t, tt, cc)
	require.NoError(t, cerr)
	require.NoError(t, serr)

	// A client trusting another CA refuses sluice's certificate.
	other := tlstest.NewCA(t, f.dir, "other")
	pool, err := loadCAs(other.File)
	require.NoError(t, err)
	_, cerr, serr = handshake(t, tt, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	require.ErrorContains(t, cerr, "certificate signed by unknown authority")
	require.Error(t, serr)
}

func TestTLSMinVersion(t *testing.T) {
	f := newTLSFixture(t)
	f.cfg.MinVersion = config.TLS13
	tt, err := NewTLS(f.cfg, nil)
	require.NoError(t, err)
	cc := f.client()
	cc.MaxVersion = tls.VersionTLS12
	_, cerr, serr := handshake(t, tt, cc)
	require.Error(t, cerr)
	require.ErrorContains(t, serr, "unsupported versions")

	cc.MaxVersion = 0
	_, cerr, serr = handshake(t, tt, cc)
	require.NoError(t, cerr)
	require.NoError(t, serr)

	// The default refuses TLS 1.1.
	f.cfg.MinVersion = config.TLS12
	tt, err = NewTLS(f.cfg, nil)
	require.NoError(t, err)
	cc.MinVersion, cc.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	_, cerr, serr = handshake(t, tt, cc)
	require.Error(t, cerr)
	require.ErrorContains(t, serr, "unsupported versions")
}

func TestTLSClientCertificates(t *testing.T) {
	f := newTLSFixture(t)
	f.cfg.ClientCAFile = f.ca.File
	tt, err := NewTLS(f.cfg, nil)
	require.NoError(t, err)

	_, cerr, serr := handshake(t, tt, f.client())
	require.NoError(t, cerr, "a client without a certificate is still accepted")
	require.NoError(t, serr)

	good, goodKey := f.ca.Issue(t, f.dir, "app", "app")
	kp, err := tls.LoadX509KeyPair(good, goodKey)
	require.NoError(t, err)
	cc := f.client()
	cc.Certificates = []tls.Certificate{kp}
	_, cerr, serr = handshake(t, tt, cc)
	require.NoError(t, cerr)
	require.NoError(t, serr)

	other := tlstest.NewCA(t, f.dir, "rogue")
	bad, badKey := other.Issue(t, f.dir, "mallory", "mallory")
	kp, err = tls.LoadX509KeyPair(bad, badKey)
	require.NoError(t, err)
	// Go's client would not send a certificate the server's CA list does
	// not cover; force it, as a hostile client would.
	cc.Certificates = nil
	cc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	_, _, serr = handshake(t, tt, cc)
	require.ErrorContains(t, serr, "certificate signed by unknown authority")
}

func TestTLSReloadIsThrottledAndKeepsOldCertOnError(t *testing.T) {
	f := newTLSFixture(t)
	logs := &syncbuf.Buffer{}
	tt, err := NewTLS(f.cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	t0 := time.Now().Add(time.Hour) // past NewTLS's own check
	first, err := tt.config(t0)
	require.NoError(t, err)

	f.ca.Issue(t, f.dir, "server", "localhost")
	same, err := tt.config(t0.Add(999 * time.Millisecond))
	require.NoError(t, err)
	require.Same(t, first, same, "files are not looked at again within a second")

	second, err := tt.config(t0.Add(time.Second))
	require.NoError(t, err)
	require.NotSame(t, first, second, "changed files are reloaded")
	leaf1, _ := x509.ParseCertificate(first.Certificates[0].Certificate[0])
	leaf2, _ := x509.ParseCertificate(second.Certificates[0].Certificate[0])
	require.NotEqual(t, leaf1.SerialNumber, leaf2.SerialNumber)
	require.Contains(t, logs.String(), "TLS certificate reloaded")

	unchanged, err := tt.config(t0.Add(5 * time.Second))
	require.NoError(t, err)
	require.Same(t, second, unchanged, "unchanged files are not reloaded")

	// A key that no longer matches (half-written renewal): keep serving.
	_, otherKey := f.ca.Issue(t, t.TempDir(), "x", "localhost")
	data, err := os.ReadFile(otherKey)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f.key, data, 0o600))
	kept, err := tt.config(t0.Add(10 * time.Second))
	require.NoError(t, err)
	require.Same(t, second, kept)
	require.Contains(t, logs.String(), "reloading the TLS certificate failed; still serving the previous one")
	n := len(logs.String())
	kept, err = tt.config(t0.Add(20 * time.Second))
	require.NoError(t, err)
	require.Same(t, second, kept)
	require.Len(t, logs.String(), n, "the same broken files are not reported again")

	// The handshake path uses the same config.
	leaf, cerr, serr := handshake(t, tt, f.client())
	require.NoError(t, cerr)
	require.NoError(t, serr)
	require.Equal(t, leaf2.SerialNumber, leaf.SerialNumber)
}

func TestTLSMissingFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := config.TLS{Mode: config.TLSRequire, CertFile: dir + "/none.crt", KeyFile: dir + "/none.key", MinVersion: config.TLS12}
	tt, err := NewTLS(cfg, nil)
	require.ErrorContains(t, err, "tls.cert_file/tls.key_file")
	require.Equal(t, err, tt.Err())
	_, cerr, serr := handshake(t, tt, &tls.Config{InsecureSkipVerify: true})
	require.Error(t, cerr)
	require.Error(t, serr)

	// Once the files appear, TLS starts working without a restart.
	tt.interval = 0
	ca := tlstest.NewCA(t, dir, "late")
	c, k := ca.Issue(t, dir, "server", "localhost")
	require.NoError(t, os.Rename(c, cfg.CertFile))
	require.NoError(t, os.Rename(k, cfg.KeyFile))
	_, cerr, serr = handshake(t, tt, &tls.Config{InsecureSkipVerify: true})
	require.NoError(t, cerr)
	require.NoError(t, serr)
	require.NoError(t, tt.Err())

	f := newTLSFixture(t)
	f.cfg.ClientCAFile = dir + "/none-ca.pem"
	_, err = NewTLS(f.cfg, nil)
	require.ErrorContains(t, err, "tls.client_ca_file")
	require.NoError(t, os.WriteFile(dir+"/empty.pem", []byte("nothing"), 0o644))
	f.cfg.ClientCAFile = dir + "/empty.pem"
	_, err = NewTLS(f.cfg, nil)
	require.ErrorContains(t, err, "holds no PEM certificate")
}

func TestSharedTLSIsOnePerConfig(t *testing.T) {
	f := newTLSFixture(t)
	a := SharedTLS(f.cfg, slog.New(slog.DiscardHandler))
	require.Same(t, a, SharedTLS(f.cfg, slog.New(slog.DiscardHandler)))
	other := f.cfg
	other.MinVersion = config.TLS13
	require.NotSame(t, a, SharedTLS(other, slog.New(slog.DiscardHandler)))
}
