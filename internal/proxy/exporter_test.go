package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// exporterColumns are the columns prometheus-community/pgbouncer_exporter
// (collector.go, metricMaps) reads from each view: labels must be there,
// metric columns must parse as numbers (or be NULL).
var exporterColumns = map[string]struct{ labels, metrics []string }{
	"DATABASES": {[]string{"name", "host", "port", "database", "force_user", "pool_mode"},
		[]string{"pool_size", "reserve_pool", "max_connections", "current_connections", "paused", "disabled"}},
	"STATS_TOTALS": {[]string{"database"},
		[]string{"query_count", "query_time", "bytes_received", "bytes_sent", "wait_time", "xact_count", "xact_time"}},
	"POOLS": {[]string{"database", "user"},
		[]string{"cl_active", "cl_active_cancel_req", "cl_waiting", "cl_waiting_cancel_req", "sv_active", "sv_active_cancel",
			"sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait"}},
}

// TestPgbouncerExporterQueries runs the exporter's exact queries (simple
// protocol, as lib/pq sends a query without arguments) against the
// console and checks every column the exporter maps, with a client
// active in session mode so that cl_active is 1.
func TestPgbouncerExporterQueries(t *testing.T) {
	h := startConsole(t, "session")
	ctx := context.Background()
	app := h.connect(ctx)
	query(t, app, "SELECT 1")
	adm, err := pgconn.Connect(ctx, h.consoleDSN("pgbouncer", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)

	_, err = consoleExec(t, adm, "SHOW STATS") // the exporter's ping
	require.NoError(t, err)
	res, err := consoleExec(t, adm, "SHOW VERSION;")
	require.NoError(t, err)
	require.Len(t, res.FieldDescriptions, 1)
	require.Equal(t, "version", string(res.FieldDescriptions[0].Name))
	res, err = consoleExec(t, adm, "SHOW LISTS;")
	require.NoError(t, err)
	require.Len(t, res.FieldDescriptions, 2)
	for _, r := range res.Rows {
		_, err := strconv.ParseFloat(string(r[1]), 64)
		require.NoError(t, err, "SHOW LISTS %s", r[0])
	}
	res, err = consoleExec(t, adm, "SHOW CONFIG;")
	require.NoError(t, err)
	require.Len(t, res.FieldDescriptions, 4)
	seen := map[string]bool{}
	for _, r := range res.Rows {
		if k := string(r[0]); k == "max_client_conn" || k == "max_user_connections" {
			_, err := strconv.ParseFloat(string(r[1]), 64)
			require.NoError(t, err, k)
			seen[k] = true
		}
	}
	require.Len(t, seen, 2)

	for view, want := range exporterColumns {
		res, err := consoleExec(t, adm, "SHOW "+view+";")
		require.NoError(t, err, view)
		idx := map[string]int{}
		for i, f := range res.FieldDescriptions {
			idx[string(f.Name)] = i
		}
		for _, c := range append(append([]string{}, want.labels...), want.metrics...) {
			require.Contains(t, idx, c, "SHOW %s has the exporter's column %s", view, c)
		}
		require.NotEmpty(t, res.Rows, view)
		for _, r := range res.Rows {
			for _, c := range want.metrics {
				if v := r[idx[c]]; v != nil {
					_, err := strconv.ParseFloat(string(v), 64)
					require.NoError(t, err, "SHOW %s column %s = %q", view, c, v)
				}
			}
		}
		if view == "POOLS" {
			var active string
			for _, r := range res.Rows {
				if string(r[idx["database"]]) == pgtest.AppDB && string(r[idx["user"]]) == pgtest.AppUser {
					active = string(r[idx["cl_active"]])
				}
			}
			require.Equal(t, "1", active, "pgbouncer_pools_client_active_connections{database=appdb,user=app}")
		}
	}
}

// exporterModule is the exporter's Go module and the version the test
// builds from the module proxy.
const exporterModule = "github.com/prometheus-community/pgbouncer_exporter@v0.10.2"

// buildExporter installs the real exporter into a temporary GOBIN; it
// skips the test, saying why, when the module cannot be fetched (no
// network, or the module proxy does not serve it).
func buildExporter(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", exporterModule)
	cmd.Dir = bin
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: cannot build %s from the Go module proxy (offline, or the proxy does not serve it): %v\n%s\n"+
			"TestPgbouncerExporterQueries checks the exporter's queries instead.", exporterModule, err, out)
	}
	return filepath.Join(bin, "pgbouncer_exporter")
}

// TestPgbouncerExporter runs the real pgbouncer_exporter against the
// console and checks the series it exports.
func TestPgbouncerExporter(t *testing.T) {
	exporter := buildExporter(t)
	h := startConsole(t, "session")
	app := h.connect(context.Background())
	query(t, app, "SELECT 1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(exporter, "--web.listen-address="+addr,
		fmt.Sprintf("--pgBouncer.connectionString=postgres://%s:%s@127.0.0.1:%d/pgbouncer?sslmode=disable", pgtest.AppUser, pgtest.AppPassword, h.port))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, "pgbouncer_up ")
	}, waitLong, 50*time.Millisecond)
	require.Contains(t, body, "pgbouncer_up 1")
	require.Contains(t, body, `pgbouncer_pools_client_active_connections{database="appdb",user="app"} 1`)
	for _, series := range []string{"pgbouncer_pools_client_waiting_connections", "pgbouncer_pools_server_active_connections",
		"pgbouncer_pools_server_idle_connections", "pgbouncer_stats_queries_pooled_total", "pgbouncer_databases",
		"pgbouncer_config_max_client_connections", "pgbouncer_version_info"} {
		require.Contains(t, body, series)
	}
}
