// Package etcdtest runs a real single-member etcd server for tests of
// sluice's fleet (internal/cluster): Debian's etcd-server package, which
// .ci/run installs. A missing binary fails the test under CI=true and
// skips it elsewhere, with a message saying how to install it.
//
// Each Server listens on free loopback ports and keeps its data in
// t.TempDir(). Stop and Start stop and restart the same server on the
// same ports and data directory, so a test can take etcd away and bring
// it back (a partition from sluice's point of view). The process runs in
// its own process group and is killed at cleanup.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Names looked up on PATH (and then /usr/bin), in order.
var Names = []string{"etcd"}

// healthTimeout bounds the wait for a started server to answer /health:
// a guard against a server that never comes up, not an expectation (it
// takes well under a second).
const healthTimeout = 2 * time.Minute

// Find returns the etcd binary's path, or fails (CI=true) or skips the
// test when there is none.
func Find(t testing.TB) string {
	t.Helper()
	for _, name := range Names {
		if bin, err := exec.LookPath(name); err == nil {
			return bin
		}
	}
	msg := fmt.Sprintf("etcdtest: no etcd server on PATH (looked for %v); install Debian's etcd-server package (apt-get install --no-install-recommends etcd-server)", Names)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
	return ""
}

// TLS serves etcd's client port over TLS (all PEM files).
type TLS struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, makes etcd require client certificates
	// that chain to it (--client-cert-auth).
	ClientCAFile string
	// CAFile verifies CertFile, for the helper's own health checks.
	CAFile string
}

// Server is one etcd member started for a test. Its methods may be
// called from the test goroutine only.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	client  string // host:port clients connect to
	peer    string // host:port of the (unused) peer listener
	logPath string
	tls     *TLS
	// health is the client of the helper's health checks.
	health *http.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start starts an etcd server and waits until it is healthy; it is
// stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartTLS(t, nil)
}

// StartTLS is Start with the client port served over TLS (nil: plain).
func StartTLS(t testing.TB, tlsFiles *TLS) *Server {
	t.Helper()
	bin := Find(t)
	if bin == "" {
		return nil
	}
	dir := t.TempDir()
	addrs := freeAddrs(t, 2)
	s := &Server{t: t, bin: bin, dir: dir, client: addrs[0], peer: addrs[1], logPath: filepath.Join(dir, "etcd.log"),
		tls: tlsFiles, health: &http.Client{Timeout: 5 * time.Second}}
	if tlsFiles != nil {
		s.health.Transport = &http.Transport{TLSClientConfig: healthTLS(t, tlsFiles)}
	}
	t.Cleanup(s.Stop)
	t.Cleanup(s.health.CloseIdleConnections)
	s.Start()
	return s
}

// healthTLS is the TLS configuration of the health checks: etcd's CA,
// and a client certificate when etcd asks for one (the server's own
// certificate, which the test CA issues for both uses).
func healthTLS(t testing.TB, f *TLS) *tls.Config {
	t.Helper()
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		c.RootCAs = x509.NewCertPool()
		c.RootCAs.AppendCertsFromPEM(pem)
	}
	if f.ClientCAFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c
}

// scheme is the client URLs' scheme.
func (s *Server) scheme() string {
	if s.tls != nil {
		return "https://"
	}
	return "http://"
}

// Endpoint is the address clients use ("127.0.0.1:port"), as
// cluster.etcd.endpoints lists it (over TLS too: with TLS settings the
// etcd client uses TLS for a host:port endpoint).
func (s *Server) Endpoint() string { return s.client }

// Start starts the server again after Stop, on the same ports and data
// directory, and waits until it is healthy. Starting a running server is
// a no-op.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.mu.Unlock()
		s.t.Fatalf("etcdtest: %v", err)
	}
	args := []string{
		"--name", "sluice-test",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.scheme() + s.client,
		"--advertise-client-urls", s.scheme() + s.client,
		"--listen-peer-urls", "http://" + s.peer,
		"--initial-advertise-peer-urls", "http://" + s.peer,
		"--initial-cluster", "sluice-test=http://" + s.peer,
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr",
	}
	if s.tls != nil {
		args = append(args, "--cert-file", s.tls.CertFile, "--key-file", s.tls.KeyFile)
		if s.tls.ClientCAFile != "" {
			args = append(args, "--client-cert-auth", "--trusted-ca-file", s.tls.ClientCAFile)
		}
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		s.t.Fatalf("etcdtest: starting %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	s.waitHealthy(done)
}

// waitHealthy polls /health until etcd says it is healthy (it has a
// leader and serves reads), the process exits, or healthTimeout passes.
func (s *Server) waitHealthy(exited <-chan struct{}) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	for {
		if healthy(ctx, s.health, s.scheme()+s.client+"/health") {
			return
		}
		select {
		case <-exited:
			s.t.Fatalf("etcdtest: etcd exited before it was healthy:\n%s", s.logTail())
		case <-ctx.Done():
			s.t.Fatalf("etcdtest: etcd not healthy after %s:\n%s", healthTimeout, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func healthy(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(buf.String(), `"health":"true"`)
}

// Stop stops the server (SIGTERM, then SIGKILL to its process group if
// it lingers) and waits for it. Stopping a stopped server is a no-op.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.t.Logf("etcdtest: etcd did not stop on SIGTERM; killing it")
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.t.Errorf("etcdtest: killing etcd's process group: %v", err)
	}
}

// logTail is the end of etcd's log, for failure messages.
func (s *Server) logTail() string {
	data, _ := os.ReadFile(s.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// freeAddr returns a loopback address with a port that was free a
// moment ago.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	// Below the kernel's ephemeral range (ip_local_port_range, 32768 and
	// up by default): a port there is never handed out by a bind to :0 or
	// to an outgoing connection, so no other test takes etcd's ports
	// while it is stopped (Stop, then Start on the same ports). All n
	// are held open together, so they are distinct.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for try := 0; len(out) < n; try++ {
		if try > 1000 {
			t.Fatalf("etcdtest: no free port below 32768 after %d tries", try)
		}
		port := 10000 + rand.IntN(22000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out
}
