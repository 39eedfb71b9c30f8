package proxy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// haproxyBinary is Debian's haproxy. Part A of issue 15 brings a shared
// helper (testutil/haproxytest); until then this file starts its own.
const haproxyBinary = "/usr/sbin/haproxy"

// startHAProxy runs HAProxy in TCP mode, round robin over backends, in
// the foreground for the test's life, and returns its address.
func startHAProxy(t *testing.T, backends []string) string {
	t.Helper()
	if _, err := os.Stat(haproxyBinary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (CI installs it: apt-get install haproxy)", haproxyBinary)
		}
		t.Skipf("%s is missing: apt-get install haproxy to run this test", haproxyBinary)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // HAProxy binds it next; a clash fails the start below, loudly
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "  server s%d %s\n", i, b)
	}
	cfg := fmt.Sprintf(`global
  maxconn 2000
defaults
  mode tcp
  timeout connect 5s
  timeout client 5m
  timeout server 5m
frontend sluices
  bind %s
  default_backend fleet
backend fleet
  balance roundrobin
%s`, addr, servers.String())
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	var out strings.Builder
	cmd := exec.Command(haproxyBinary, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(time.Minute); ; { // a guard against a hang, not a measured limit
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		select {
		case err := <-exited:
			t.Fatalf("haproxy exited: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen on %s\n%s", addr, out.String())
		}
	}
}

// Issue 15's cancel test as a client meets it: three sluices behind
// HAProxy (TCP, round robin); 100 queries pg_sleep(30), each cancelled
// with the driver's own CancelRequest, a fresh connection that HAProxy
// routes to whichever instance comes next. All 100 end with 57014.
func TestFleetCancelThroughHAProxy(t *testing.T) {
	hs, _ := startFleet(t, txPool(10))
	var backends []string
	for _, h := range hs {
		backends = append(backends, h.srv.Addr().String())
	}
	front := startHAProxy(t, backends)
	host, port, err := net.SplitHostPort(front)
	require.NoError(t, err)
	ctx := context.Background()
	mon := newMonitor(t)
	const workers, rounds = 10, 10
	var cancelled atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		c, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
			host, port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close(context.Background()) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				sql := fmt.Sprintf("SELECT pg_sleep(30), %d", 5000+w*rounds+r)
				done := make(chan struct{})
				var err error
				go func() {
					defer close(done)
					_, err = c.Exec(ctx, sql).ReadAll()
				}()
				if werr := mon.waitRunning(ctx, sql, done); werr != nil {
					<-done
					t.Errorf("worker %d: %v (query error: %v)", w, werr, err)
					return
				}
				if cerr := c.CancelRequest(ctx); cerr != nil {
					t.Errorf("worker %d: cancel request: %v", w, cerr)
				}
				<-done
				if pgCode(err) != "57014" {
					t.Errorf("worker %d round %d: %v", w, r, err)
					return
				}
				cancelled.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(workers*rounds), cancelled.Load())
	forwarded := sum(t, hs, func(h *harness) prometheus.Metric { return h.srv.Metrics().PeerCancelsSent.WithLabelValues("ok") })
	require.Equal(t, forwarded, sum(t, hs, func(h *harness) prometheus.Metric { return h.srv.Metrics().PeerCancelsReceived.WithLabelValues("ok") }))
	require.Positive(t, forwarded, "HAProxy sent every cancel to the instance that issued its key: the test proves nothing")
	t.Logf("%d of %d cancels reached another instance than the issuer and were forwarded", int(forwarded), workers*rounds)
}
