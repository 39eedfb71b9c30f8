// Package haproxytest runs a real HAProxy (Debian's haproxy package,
// which .ci/run installs) in TCP mode in front of given backends, round
// robin, the way a fleet of sluice instances is put behind a load
// balancer. A missing binary fails the test under CI=true and skips it
// elsewhere, with a message saying how to install it.
//
// The proxy listens on a free loopback port, keeps its configuration in
// t.TempDir(), runs in the foreground in its own process group and is
// killed when the test ends. No health checks run: each new connection
// goes to the next backend in order, whether it is up or not, so a test
// knows where a connection lands.
package haproxytest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Names looked up on PATH, in order; Debian installs /usr/sbin/haproxy,
// which is not on every user's PATH, so it is tried too.
var Names = []string{"haproxy", "/usr/sbin/haproxy"}

// readyTimeout bounds the wait for the listener: a guard, not an
// expectation.
const readyTimeout = time.Minute

// Find returns haproxy's path, or fails (CI=true) or skips the test.
func Find(t testing.TB) string {
	t.Helper()
	for _, name := range Names {
		if bin, err := exec.LookPath(name); err == nil {
			return bin
		}
	}
	msg := fmt.Sprintf("haproxytest: no haproxy found (looked for %v); install Debian's haproxy package (apt-get install --no-install-recommends haproxy)", Names)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
	return ""
}

// Proxy is a running HAProxy.
type Proxy struct {
	addr string
}

// Addr is the "127.0.0.1:port" clients connect to.
func (p *Proxy) Addr() string { return p.addr }

// Start runs HAProxy balancing TCP connections round robin over
// backends ("host:port" each) and waits until it accepts connections.
func Start(t testing.TB, backends ...string) *Proxy {
	t.Helper()
	bin := Find(t)
	if bin == "" {
		return nil
	}
	if len(backends) == 0 {
		t.Fatal("haproxytest: no backends")
	}
	dir := t.TempDir()
	addrs := freeAddrs(t, 2)
	addr, health := addrs[0], addrs[1]
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
    maxconn 4096

defaults
    mode tcp
    timeout connect 10s
    timeout client 1h
    timeout server 1h

frontend health
    mode http
    bind %s
    monitor-uri /

frontend fe
    bind %s
    default_backend be

backend be
    balance roundrobin
`, health, addr)
	for i, b := range backends {
		fmt.Fprintf(&cfg, "    server s%d %s\n", i, b)
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatalf("haproxytest: %v", err)
	}
	logPath := filepath.Join(dir, "haproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("haproxytest: %v", err)
	}
	// -db: stay in the foreground; -W would fork a master, which is not
	// wanted either.
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("haproxytest: starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("haproxytest: killing haproxy's process group: %v", err)
		}
	})
	// Readiness is checked on a monitor frontend, bound at the same time
	// as the balanced one, so that no check takes a turn of the round
	// robin.
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", health, time.Second)
		if err == nil {
			c.Close()
			return &Proxy{addr: addr}
		}
		select {
		case <-done:
			data, _ := os.ReadFile(logPath)
			t.Fatalf("haproxytest: haproxy exited before listening:\n%s", data)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(logPath)
			t.Fatalf("haproxytest: haproxy not listening on %s after %s:\n%s", addr, readyTimeout, data)
		}
	}
}

// freeAddrs returns n distinct free addresses: all n listeners are held
// open together (two binds to :0 closed one after the other may be
// given the same port).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("haproxytest: %v", err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}
