package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// Startup parameters behave as startup parameters (issue 13, points 1
// and 2): sluice opens server connections with the client's parameters
// in their own startup packet, so what psql sees through sluice is what
// it sees directly: RESET, RESET ALL and a rolled-back SET LOCAL return
// to the client's startup value, backend-start-only parameters work,
// and pg_settings reports source "client" with the client's reset_val.

// startupModes runs f for session and transaction pooling, on a pool of
// poolSize server connections.
func startupModes(t *testing.T, poolSize int, f func(t *testing.T, h *harness)) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			f(t, start(t, fmt.Sprintf("max_size: %d\n    pool_mode: %s", poolSize, mode)))
		})
	}
}

// psqlVia runs psql as user app through sluice and directly against the
// cluster, with env added to the environment, and returns both outputs.
func psqlVia(t *testing.T, h *harness, env []string, args ...string) (viaSluice, direct string) {
	t.Helper()
	run := func(port int) string {
		full := append([]string{"-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", pgtest.AppUser, "-d", pgtest.AppDB}, args...)
		out, err := psql(t, append([]string{"PGPASSWORD=" + pgtest.AppPassword, "PGSSLMODE=disable", "PGGSSENCMODE=disable"}, env...), full...)
		require.NoError(t, err, "%s", out)
		return out
	}
	return run(h.port), run(pgtest.Cluster(t).Port)
}

func TestStartupParamResetReturnsToStartupValue(t *testing.T) {
	env := []string{"PGDATESTYLE=Postgres, MDY"}
	startupModes(t, 4, func(t *testing.T, h *harness) {
		for _, script := range [][]string{
			{"-c", "RESET datestyle", "-c", "SHOW datestyle"},
			{"-c", "RESET datestyle; SHOW datestyle"},
			{"-c", "SET datestyle = 'SQL, DMY'", "-c", "RESET ALL", "-c", "SHOW datestyle"},
			{"-c", "SET datestyle = 'SQL, DMY'; RESET ALL; SHOW datestyle"},
			{"-c", "BEGIN; SET LOCAL datestyle = 'SQL, DMY'; ROLLBACK", "-c", "SHOW datestyle"},
			{"-c", "DISCARD ALL", "-c", "SHOW datestyle"},
		} {
			got, direct := psqlVia(t, h, env, script...)
			require.Equal(t, "Postgres, MDY\n", direct, "%q directly", script)
			require.Equal(t, direct, got, "%q through sluice", script)
		}
	})
}

// Parameters PostgreSQL accepts only at connection start.
func TestStartupParamBackendStartOnly(t *testing.T) {
	startupModes(t, 4, func(t *testing.T, h *harness) {
		got, direct := psqlVia(t, h, []string{"PGOPTIONS=-c ignore_system_indexes=on"}, "-c", "SHOW ignore_system_indexes")
		require.Equal(t, "on\n", direct)
		require.Equal(t, direct, got)
	})
}

// log_connections may be set at connection start by a superuser only.
func TestStartupParamSuperuserBackendStart(t *testing.T) {
	const su, suPW = "startup_su", "startup_su_pw"
	c := pgtest.Cluster(t)
	ctx := context.Background()
	require.NoError(t, c.CreateRole(ctx, su, suPW, "scram-sha-256"))
	require.NoError(t, c.Exec(ctx, "ALTER ROLE "+pgserver.QuoteIdent(su)+" SUPERUSER"))
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			sock := t.TempDir()
			h := startConfig(t, sock, configText(t, sock, "max_size: 2\n    pool_mode: "+mode,
				fmt.Sprintf("  - name: %s\n    password: %s\n", su, suPW)))
			for _, port := range []int{h.port, c.Port} {
				out, err := psql(t, []string{"PGPASSWORD=" + suPW, "PGOPTIONS=-c log_connections=on"},
					"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", su, "-d", pgtest.AppDB, "-c", "SHOW log_connections")
				require.NoError(t, err, "%s", out)
				require.Equal(t, "on\n", out, "port %d", port)
			}
		})
	}
}

// pg_settings' source and reset_val match a direct connection.
func TestStartupParamPgSettingsMatchDirect(t *testing.T) {
	env := []string{"PGDATESTYLE=Postgres, MDY", "PGOPTIONS=-c work_mem=3MB -c search_path=public,pg_catalog", "PGAPPNAME=startup_test"}
	const q = `SELECT name, setting, source, reset_val FROM pg_settings
		WHERE name IN ('DateStyle', 'work_mem', 'search_path', 'application_name', 'client_encoding', 'statement_timeout') ORDER BY name`
	startupModes(t, 4, func(t *testing.T, h *harness) {
		got, direct := psqlVia(t, h, env, "-c", q)
		require.Contains(t, direct, "work_mem|3072|client|3072")
		require.Contains(t, direct, "DateStyle|Postgres, MDY|client|Postgres, MDY")
		require.Equal(t, direct, got)
	})
}

// An explicit parameter wins over the same one in options, as in
// PostgreSQL (point 2).
func TestStartupParamExplicitWinsOverOptions(t *testing.T) {
	env := []string{"PGOPTIONS=-c client_encoding=SQL_ASCII", "PGCLIENTENCODING=UTF8"}
	startupModes(t, 4, func(t *testing.T, h *harness) {
		got, direct := psqlVia(t, h, env, "-c", "SHOW client_encoding")
		require.Equal(t, "UTF8\n", direct)
		require.Equal(t, direct, got)
	})
}

// With the pool full of connections opened with other parameters, a
// client still gets one opened with its own: the coldest idle one is
// replaced, so RESET is exact however busy the pool was.
func TestStartupParamFullPoolReplacesMismatched(t *testing.T) {
	startupModes(t, 1, func(t *testing.T, h *harness) {
		other := []string{"PGDATESTYLE=SQL, DMY", "PGAPPNAME=other"}
		got, _ := psqlVia(t, h, other, "-c", "SHOW datestyle")
		require.Equal(t, "SQL, DMY\n", got)
		got, direct := psqlVia(t, h, []string{"PGDATESTYLE=Postgres, MDY"}, "-c", "RESET datestyle", "-c", "SHOW datestyle", "-c", "SHOW application_name")
		require.Equal(t, direct, got)
		require.True(t, strings.HasPrefix(got, "Postgres, MDY\n"), got)
		// And back: the first set's connection was replaced in turn.
		got, _ = psqlVia(t, h, other, "-c", "RESET ALL", "-c", "SHOW datestyle")
		require.Equal(t, "SQL, DMY\n", got)
		var replaced uint64
		for _, p := range h.srv.PoolStats() {
			replaced += p.Replaced
		}
		require.GreaterOrEqual(t, replaced, uint64(2), "counted as closed for reason settings")
	})
}

// A startup parameter PostgreSQL refuses gets PostgreSQL's own FATAL, as
// directly: the server judges it in its startup packet.
func TestStartupParamRefusedAsDirectly(t *testing.T) {
	startupModes(t, 2, func(t *testing.T, h *harness) {
		for _, env := range [][]string{{"PGDATESTYLE=nonsense"}, {"PGOPTIONS=-c no_such_setting=1"}} {
			var outs []string
			for _, port := range []int{h.port, pgtest.Cluster(t).Port} {
				out, err := psql(t, append([]string{"PGPASSWORD=" + pgtest.AppPassword, "PGSSLMODE=disable", "PGGSSENCMODE=disable"}, env...),
					"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", pgtest.AppUser, "-d", pgtest.AppDB, "-c", "SELECT 1")
				require.Error(t, err)
				// libpq may try twice (directly it retries a 42704 without
				// application_name); compare the error, not the attempts.
				first, _, _ := strings.Cut(out, "\n")
				outs = append(outs, strings.ReplaceAll(first, strconv.Itoa(port), "PORT"))
			}
			require.Equal(t, outs[1], outs[0], "%v", env)
		}
		// The pool is usable afterwards.
		got, _ := psqlVia(t, h, nil, "-c", "SELECT 1")
		require.Equal(t, "1\n", got)
	})
}
