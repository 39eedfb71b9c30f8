package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend/tlstest"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// startDaemon runs a whole sluice (the daemon `sluice run` starts, admin
// endpoint included) in front of the PostgreSQL at port and returns its
// admin base URL.
// adminYAML is added under admin:.
func startDaemon(t *testing.T, port int, adminYAML string) string {
	t.Helper()
	text := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
%s
shutdown_timeout: 0s
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
`, adminYAML, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, port)
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	d, err := daemon.Start(cfg, path, io.Discard)
	require.NoError(t, err)
	t.Cleanup(d.Shutdown)
	scheme := "http://"
	if adminYAML != "" {
		scheme = "https://"
	}
	return scheme + d.Admin.Addr().String()
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// The container's HEALTHCHECK: 0 while /readyz is 200, an error (exit
// 1) with /readyz's reason while a database cannot be served, and an
// error naming the failure when nothing answers.
func TestHealthcheckFollowsReadyz(t *testing.T) {
	base := startDaemon(t, pgtest.Cluster(t).Port, "")
	out, err := runCLI(t, "healthcheck", "--url", base+"/readyz")
	require.NoError(t, err, out)
	require.Contains(t, out, `"ready": true`)
	out, err = runCLI(t, "healthcheck", "--url", base+"/livez")
	require.NoError(t, err, out)

	down := startDaemon(t, closedPort(t), "")
	out, err = runCLI(t, "healthcheck", "--url", down+"/readyz")
	require.Error(t, err)
	require.Contains(t, out, "sluice healthcheck: "+down+"/readyz: 503 Service Unavailable")
	require.Contains(t, out, "not ready: "+pgtest.AppDB)

	nobody := fmt.Sprintf("http://127.0.0.1:%d/readyz", closedPort(t))
	out, err = runCLI(t, "healthcheck", "--url", nobody)
	require.Error(t, err)
	require.Contains(t, out, "connection refused")

	out, err = runCLI(t, "healthcheck", "--url", base+"/no-such-page")
	require.Error(t, err)
	require.Contains(t, out, "404 Not Found")

	out, err = runCLI(t, "healthcheck", "--url", "127.0.0.1:9930/readyz")
	require.Error(t, err)
	require.Contains(t, out, "must start with http:// or https://")
}

// An HTTPS admin endpoint: its certificate is not trusted by the probe
// (no CA to give it), so the probe fails unless --insecure.
func TestHealthcheckOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "admin")
	cert, key := ca.Issue(t, dir, "127.0.0.1", "127.0.0.1")
	base := startDaemon(t, pgtest.Cluster(t).Port, fmt.Sprintf("  tls_cert_file: %s\n  tls_key_file: %s", cert, key))
	out, err := runCLI(t, "healthcheck", "--url", base+"/readyz")
	require.Error(t, err)
	require.Contains(t, out, "certificate signed by unknown authority")
	out, err = runCLI(t, "healthcheck", "--insecure", "--url", base+"/readyz")
	require.NoError(t, err, out)
	require.Contains(t, out, `"ready": true`)
}
