package admin_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/admin"
	"github.com/sluice-proxy/sluice/internal/backend/tlstest"
	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/sluicetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const token = "0123456789abcdef-test-token"

// endpoint is a real sluice in front of PostgreSQL at port, with its
// admin endpoint; adminYAML is added under admin:.
type endpoint struct {
	srv  *proxy.Server
	base string
	http *http.Client
}

func startEndpoint(t *testing.T, port int, adminYAML string, tlsFiles ...string) *endpoint {
	t.Helper()
	text := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
admin:
  address: ""
%s
shutdown_timeout: 5s
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool:
      min_size: 1
`, adminYAML, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, port)
	srv, _, _ := sluicetest.Start(t, text, nil)
	o := admin.Options{Address: "127.0.0.1:0", Registry: srv.Metrics().Registry, Healthy: func() bool { return true },
		Proxy: srv, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e := &endpoint{srv: srv, http: &http.Client{Timeout: time.Minute}}
	scheme := "http"
	if len(tlsFiles) == 3 {
		o.TLSCertFile, o.TLSKeyFile = tlsFiles[0], tlsFiles[1]
		pem, err := os.ReadFile(tlsFiles[2])
		require.NoError(t, err)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		e.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		scheme = "https"
	}
	a, err := admin.StartWith(o)
	require.NoError(t, err)
	t.Cleanup(a.Close)
	e.base = scheme + "://" + a.Addr().String()
	return e
}

// do sends a request, with the bearer token when tok is not "".
func (e *endpoint) do(t *testing.T, method, path, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := e.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPIReadsAndCommandsNeedTheToken(t *testing.T) {
	e := startEndpoint(t, pgtest.Cluster(t).Port, "  api_token: "+token)
	code, body := e.do(t, "GET", "/api/pools", "")
	require.Equal(t, http.StatusOK, code, body)
	var pools []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &pools))
	require.Eventually(t, func() bool { // min_size: the pool exists from the start
		_, body = e.do(t, "GET", "/api/pools", "")
		require.NoError(t, json.Unmarshal([]byte(body), &pools))
		return len(pools) > 0
	}, time.Minute, 10*time.Millisecond)
	require.Equal(t, pgtest.AppDB, pools[0]["database"])
	for _, view := range []string{"clients", "servers", "stats", "databases", "users", "config", "lists", "version", "state", "topology", "pins"} {
		code, body := e.do(t, "GET", "/api/"+view, "")
		require.Equal(t, http.StatusOK, code, "%s: %s", view, body)
		require.True(t, json.Valid([]byte(body)), view)
	}
	code, body = e.do(t, "GET", "/api/config", "")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, token, "the token is redacted")
	require.Contains(t, body, `"(set)"`)

	for _, tok := range []string{"", "wrong-token-0123456789"} {
		code, body = e.do(t, "POST", "/api/pause", tok)
		require.Equal(t, http.StatusUnauthorized, code, body)
		require.Contains(t, body, `"error"`)
	}
	code, body = e.do(t, "POST", "/api/pause?db=nosuchdb", token)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `database \"nosuchdb\" does not exist`)
	code, body = e.do(t, "POST", "/api/resume?db="+pgtest.AppDB, token)
	require.Equal(t, http.StatusConflict, code, "RESUME of a database that is not paused: %s", body)
	require.Contains(t, body, "is not paused")
	code, body = e.do(t, "POST", "/api/pause?db="+pgtest.AppDB, token)
	require.Equal(t, http.StatusOK, code, body)
	code, body = e.do(t, "POST", "/api/resume?db="+pgtest.AppDB, token)
	require.Equal(t, http.StatusOK, code, body)
	req, _ := http.NewRequest("POST", e.base+"/api/kill_client", strings.NewReader(`{"id": 1000000}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusConflict, resp.StatusCode, "a JSON id reaches KillClient, which knows no such client")
	req, _ = http.NewRequest("POST", e.base+"/api/pause", strings.NewReader(`{"db": "nosuchdb"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = e.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "the JSON body's db")
	code, body = e.do(t, "POST", "/api/disable", token)
	require.Equal(t, http.StatusBadRequest, code, body)
	code, body = e.do(t, "POST", "/api/kill_client?id=x", token)
	require.Equal(t, http.StatusBadRequest, code, body)
	code, _ = e.do(t, "GET", "/api/pause", "")
	require.Equal(t, http.StatusMethodNotAllowed, code)
	code, _ = e.do(t, "GET", "/api/nothing", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = e.do(t, "POST", "/api/nothing", token)
	require.Equal(t, http.StatusNotFound, code)
}

func TestAPIWithoutTokenRefusesCommands(t *testing.T) {
	e := startEndpoint(t, pgtest.Cluster(t).Port, "")
	code, body := e.do(t, "POST", "/api/reload", "")
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, "admin.api_token")
	code, _ = e.do(t, "GET", "/api/pools", "")
	require.Equal(t, http.StatusOK, code)
}

func TestAPIReadsRequireTokenWhenConfigured(t *testing.T) {
	e := startEndpoint(t, pgtest.Cluster(t).Port, "  api_token: "+token+"\n  api_read_requires_token: true")
	code, _ := e.do(t, "GET", "/api/pools", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = e.do(t, "GET", "/api/pools", token)
	require.Equal(t, http.StatusOK, code)
	code, _ = e.do(t, "GET", "/livez", "")
	require.Equal(t, http.StatusOK, code, "probes never need the token")
	code, _ = e.do(t, "GET", "/metrics", "")
	require.Equal(t, http.StatusOK, code)
}

func TestPprofOnlyWhenConfigured(t *testing.T) {
	off := startEndpoint(t, pgtest.Cluster(t).Port, "")
	code, _ := off.do(t, "GET", "/debug/pprof/", "")
	require.Equal(t, http.StatusNotFound, code)
	on := startEndpoint(t, pgtest.Cluster(t).Port, "  pprof: true")
	code, body := on.do(t, "GET", "/debug/pprof/", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "goroutine")
}

func TestAdminOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "admin")
	cert, key := ca.Issue(t, dir, "127.0.0.1", "127.0.0.1")
	e := startEndpoint(t, pgtest.Cluster(t).Port, "", cert, key, ca.File)
	code, _ := e.do(t, "GET", "/livez", "")
	require.Equal(t, http.StatusOK, code)
}

// TestReadyzFollowsPostgreSQL stops and restarts a throwaway cluster of
// the test's own (the package's is shared).
func TestReadyzFollowsPostgreSQL(t *testing.T) {
	ctx := context.Background()
	c, err := pgserver.Start(ctx, pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { c.Stop() })
	e := startEndpoint(t, c.Port, "")
	code, body := e.do(t, "GET", "/readyz", "")
	require.Equal(t, http.StatusOK, code, body)
	code, _ = e.do(t, "GET", "/livez", "")
	require.Equal(t, http.StatusOK, code)

	require.NoError(t, c.Shutdown(ctx))
	code, body = e.do(t, "GET", "/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var r struct {
		Ready     bool             `json:"ready"`
		Reason    string           `json:"reason"`
		Databases []map[string]any `json:"databases"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.False(t, r.Ready)
	require.Contains(t, r.Reason, pgtest.AppDB)
	require.Contains(t, r.Databases[0]["reason"], "not reachable")
	code, _ = e.do(t, "GET", "/livez", "")
	require.Equal(t, http.StatusOK, code, "the process still serves")

	require.NoError(t, c.Restart(ctx))
	require.Eventually(t, func() bool {
		code, body = e.do(t, "GET", "/readyz", "")
		return code == http.StatusOK
	}, time.Minute, 20*time.Millisecond, body)
	require.True(t, strings.Contains(body, `"ready": true`), body)
}
