package frontend

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
)

// TLSReloadInterval is how often, at most, the certificate files are
// checked for changes (one stat per file, on a handshake). It is read when
// a TLS is created; tests that replace files and connect at once set it to
// 0 before starting a server.
var TLSReloadInterval = time.Second

// ALPN is the protocol name PostgreSQL 17+ clients and servers negotiate.
const ALPN = "postgresql"

// TLS is the client-facing TLS of one tls configuration. Its certificate,
// key and client CA come from files that are re-read when their mtime or
// size changes, checked at most once per interval, on the handshake
// goroutine (no goroutine or watcher of its own). A failed reload is
// logged and the previous certificate kept, so a half-written renewal
// never takes TLS down. Safe for concurrent use.
type TLS struct {
	cfg      config.TLS
	log      *slog.Logger
	interval time.Duration
	version  uint16
	base     *tls.Config // hands out current via GetConfigForClient

	mu      sync.Mutex
	checked time.Time   // when the files were last stat'ed
	loaded  [3]stamp    // stamps of the files current was built from
	failed  [3]stamp    // stamps whose load failed (not logged again)
	current *tls.Config // nil until a load succeeds
	err     error       // the last load error, if current is stale or nil
}

// stamp identifies one version of a file without reading it.
type stamp struct {
	mod  time.Time
	size int64
	ok   bool
}

// NewTLS prepares client-side TLS for c and loads the files once. A load
// error is returned (so callers can fail at start-up) but the TLS is still
// usable: it keeps trying on later handshakes.
func NewTLS(c config.TLS, log *slog.Logger) (*TLS, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TLS{cfg: c, log: log, interval: TLSReloadInterval, version: tls.VersionTLS12}
	if c.MinVersion == config.TLS13 {
		t.version = tls.VersionTLS13
	}
	t.base = &tls.Config{MinVersion: t.version, GetConfigForClient: t.configForClient}
	_, err := t.config(time.Now())
	return t, err
}

var (
	sharedMu  sync.Mutex
	sharedTLS = map[config.TLS]*TLS{}
)

// SharedTLS returns the one TLS for c in this process, creating it on
// first use. Sessions call it per handshake: keeping the instance here
// (rather than per session) is what lets the reload check be throttled and
// the parsed certificate be reused. A SIGHUP that changes the tls section
// yields a new instance; the few old ones are kept (they are small).
func SharedTLS(c config.TLS, log *slog.Logger) *TLS {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	t := sharedTLS[c]
	if t == nil {
		var err error
		if t, err = NewTLS(c, log); err != nil {
			log.Error("cannot load the TLS certificate; TLS clients are refused until it loads", "error", err)
		}
		sharedTLS[c] = t
	}
	return t
}

// Err reports why no certificate could be loaded so far (nil once one
// has been): callers can refuse to start with a broken tls section.
func (t *TLS) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != nil {
		return nil
	}
	return t.err
}

// Config returns the *tls.Config to serve with; each handshake gets the
// certificate current at that moment.
func (t *TLS) Config() *tls.Config { return t.base }

// Upgrade answers a client's SSLRequest with 'S' and runs the TLS
// handshake on c, within c's deadline. On success the caller must use the
// returned conn (which owns c) for everything that follows.
func (t *TLS) Upgrade(c net.Conn) (*tls.Conn, error) {
	if _, err := c.Write([]byte{'S'}); err != nil {
		return nil, err
	}
	tc := tls.Server(c, t.base)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake failed: %w", err)
	}
	return tc, nil
}

func (t *TLS) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return t.config(time.Now())
}

// config returns the current server config, reloading the files first if
// the interval has passed and any of them changed.
func (t *TLS) config(now time.Time) (*tls.Config, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.checked.IsZero() && now.Sub(t.checked) < t.interval {
		if t.current != nil {
			return t.current, nil
		}
		return nil, t.err
	}
	t.checked = now
	stamps := t.stamps()
	if t.current != nil && stamps == t.loaded {
		return t.current, nil
	}
	if t.err != nil && stamps == t.failed {
		if t.current != nil {
			return t.current, nil
		}
		return nil, t.err
	}
	cfg, err := t.load()
	if err != nil {
		t.err, t.failed = err, stamps
		if t.current != nil {
			t.log.Error("reloading the TLS certificate failed; still serving the previous one", "error", err)
			return t.current, nil
		}
		return nil, err
	}
	if t.current != nil {
		t.log.Info("TLS certificate reloaded", "cert_file", t.cfg.CertFile)
	}
	t.current, t.loaded, t.err = cfg, stamps, nil
	return cfg, nil
}

func (t *TLS) stamps() [3]stamp {
	var s [3]stamp
	for i, name := range []string{t.cfg.CertFile, t.cfg.KeyFile, t.cfg.ClientCAFile} {
		if name == "" {
			continue
		}
		if fi, err := os.Stat(name); err == nil {
			s[i] = stamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
		}
	}
	return s
}

// load reads the files and builds the config handshakes use.
func (t *TLS) load() (*tls.Config, error) {
	if t.cfg.CertFile == "" || t.cfg.KeyFile == "" {
		return nil, errors.New("tls.cert_file and tls.key_file must both be set")
	}
	cert, err := tls.LoadX509KeyPair(t.cfg.CertFile, t.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   t.version,
		NextProtos:   []string{ALPN},
	}
	if t.cfg.ClientCAFile != "" {
		pool, err := loadCAs(t.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// loadCAs reads PEM CA certificates from path into a pool; a file with no
// certificate in it is an error.
func loadCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
