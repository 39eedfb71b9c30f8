package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/sluicetest"
)

// What SHOW POOLS and SHOW SERVERS tell in both pool modes, read through
// a real console: maxwait, application_name, the LISTEN fan-out's
// listener connection, close_needed after a RELOAD that moved the server.

// consoleText is a config with the console open to app, appdb in
// poolMode with pool settings poolYAML, and extra database settings
// (indented 4 spaces) after pool_mode.
func consoleText(t *testing.T, sock, poolMode, poolYAML, dbExtra string) string {
	text := strings.Replace(configText(t, sock, poolYAML, ""), "admin:\n  address: \"\"\n", "admin:\n  address: \"\"\n  users: [app]\n", 1)
	return strings.Replace(text, "    pool:\n", "    pool_mode: "+poolMode+"\n"+dbExtra+"    pool:\n", 1)
}

// adminConn opens a console connection as app.
func adminConn(t *testing.T, h *harness) *pgconn.PgConn {
	t.Helper()
	adm, err := pgconn.Connect(context.Background(), h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	t.Cleanup(func() { adm.Close(context.Background()) })
	return adm
}

// consoleRows runs a SHOW and returns its rows by column name (NULL is
// "<null>").
func consoleRows(t *testing.T, adm *pgconn.PgConn, show string) []map[string]string {
	t.Helper()
	res, err := consoleExec(t, adm, show)
	require.NoError(t, err, show)
	rows := make([]map[string]string, 0, len(res.Rows))
	for _, r := range res.Rows {
		row := map[string]string{}
		for i, f := range res.FieldDescriptions {
			if r[i] == nil {
				row[f.Name] = "<null>"
			} else {
				row[f.Name] = string(r[i])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// appPool is SHOW POOLS' row of appdb/app.
func appPool(t *testing.T, adm *pgconn.PgConn) map[string]string {
	t.Helper()
	for _, r := range consoleRows(t, adm, "SHOW POOLS") {
		if r["database"] == pgtest.AppDB && r["user"] == pgtest.AppUser {
			return r
		}
	}
	t.Fatal("SHOW POOLS has no appdb/app row")
	return nil
}

// serverRow is SHOW SERVERS' row whose remote_pid is pid (nil: none).
func serverRow(t *testing.T, adm *pgconn.PgConn, pid string) map[string]string {
	t.Helper()
	for _, r := range consoleRows(t, adm, "SHOW SERVERS") {
		if r["remote_pid"] == pid {
			return r
		}
	}
	return nil
}

// SHOW POOLS' maxwait/maxwait_us is how long the oldest queued client has
// waited, in both pool modes: it grows while the only server connection
// is held, and is 0 again once nobody waits.
func TestConsoleShowPoolsMaxWait(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			sock := t.TempDir()
			h := startConfig(t, sock, consoleText(t, sock, mode, "min_size: 0\n      max_size: 1", ""))
			ctx := context.Background()
			adm := adminConn(t, h)
			holder := h.connect(ctx)
			query(t, holder, "BEGIN") // transaction mode: holds the connection until COMMIT
			waited := make(chan error, 1)
			go func() {
				c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword)) // session mode waits here
				if err == nil {
					_, err = simpleQuery(ctx, c, "SELECT 1") // transaction mode, here
					c.Close(ctx)
				}
				waited <- err
			}()
			require.Eventually(t, func() bool { return appPool(t, adm)["cl_waiting"] == "1" }, waitLong, tick, "the second client queues")
			require.Eventually(t, func() bool {
				p := appPool(t, adm)
				return p["cl_waiting"] == "1" && (p["maxwait"] != "0" || p["maxwait_us"] != "0")
			}, waitLong, tick, "maxwait grows while the client waits")
			p := appPool(t, adm)
			us, err := strconv.Atoi(p["maxwait_us"])
			require.NoError(t, err)
			require.Less(t, us, 1_000_000, "maxwait_us is the microseconds beyond maxwait's seconds")
			query(t, holder, "COMMIT")
			require.NoError(t, holder.Close(ctx))
			require.NoError(t, <-waited)
			require.Eventually(t, func() bool {
				p := appPool(t, adm)
				return p["cl_waiting"] == "0" && p["maxwait"] == "0" && p["maxwait_us"] == "0"
			}, waitLong, tick, "nobody waits: maxwait is 0")
		})
	}
}

// SHOW SERVERS' application_name is the server session's: what its
// connection was opened with (the client's startup parameter, in either
// mode), and in transaction mode what a SET changed it to once sluice
// has read it back.
func TestConsoleShowServersApplicationName(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			sock := t.TempDir()
			h := startConfig(t, sock, consoleText(t, sock, mode, "min_size: 0\n      max_size: 4", ""))
			ctx := context.Background()
			adm := adminConn(t, h)
			app := h.connect(ctx, "application_name=report_job")
			query(t, app, "BEGIN")
			pid := query(t, app, "SELECT pg_backend_pid()")[0]
			row := serverRow(t, adm, pid)
			require.NotNil(t, row, "SHOW SERVERS lists the client's server connection")
			require.Equal(t, "active", row["state"])
			require.Equal(t, "report_job", row["application_name"])
			query(t, app, "COMMIT")
			if mode != "transaction" {
				return
			}
			query(t, app, "SET application_name = 'renamed_job'")
			require.Eventually(t, func() bool {
				for _, r := range consoleRows(t, adm, "SHOW SERVERS") {
					if r["application_name"] == "renamed_job" {
						return true
					}
				}
				return false
			}, waitLong, tick, "the SET is read back after the transaction")
		})
	}
}

// The LISTEN fan-out's listener connection is a SHOW SERVERS row of its
// own, state "listen", outside SHOW POOLS' sv_active and sv_idle (it is
// not one of max_size) and inside SHOW DATABASES' current_connections
// (it holds a max_db_connections token); it is the server backend that
// LISTENs, and its row goes when nobody listens.
func TestConsoleShowServersListener(t *testing.T) {
	sock := t.TempDir()
	h := startConfig(t, sock, consoleText(t, sock, "transaction", "min_size: 0\n      max_size: 2", ""))
	ctx := context.Background()
	adm := adminConn(t, h)
	app := h.connect(ctx)
	query(t, app, "LISTEN console_listener_ch")
	var row map[string]string
	require.Eventually(t, func() bool {
		row = nil
		for _, r := range consoleRows(t, adm, "SHOW SERVERS") {
			if r["state"] == "listen" {
				row = r
			}
		}
		return row != nil
	}, waitLong, tick, "the listener connection shows")
	require.Equal(t, pgtest.AppDB, row["database"])
	require.Equal(t, pgtest.AppUser, row["user"])
	require.Equal(t, "<null>", row["link"], "no client holds it")
	require.Equal(t, "<null>", row["client_id"])
	require.Equal(t, "0", row["close_needed"])

	direct, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		pgtest.Cluster(t).Port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, err)
	defer direct.Close(ctx)
	require.Equal(t, []string{"1"}, query(t, direct, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+row["remote_pid"]+
		" AND query LIKE '%LISTEN%console_listener_ch%'"), "remote_pid is the backend that LISTENs")

	p := appPool(t, adm)
	active, _ := strconv.Atoi(p["sv_active"])
	idle, _ := strconv.Atoi(p["sv_idle"])
	n := 0
	for _, r := range consoleRows(t, adm, "SHOW SERVERS") {
		if r["database"] == pgtest.AppDB && r["state"] != "listen" {
			n++
		}
	}
	require.Equal(t, active+idle, n, "sv_active + sv_idle count the pool's connections, not the listener")
	for _, d := range consoleRows(t, adm, "SHOW DATABASES") {
		if d["name"] == pgtest.AppDB {
			require.Equal(t, strconv.Itoa(n+1), d["current_connections"], "current_connections counts the listener")
		}
	}

	query(t, app, "UNLISTEN *")
	require.Eventually(t, func() bool { return serverRow(t, adm, row["remote_pid"]) == nil }, waitLong, tick,
		"the listener closes when nobody listens")
}

// A RELOAD that changes a database's server (here its dbname) retires
// the pool's connections, as PgBouncer does: idle ones are closed at
// once, a connection lent to a client stays with it (close_needed 1) and
// is closed when released, and new clients reach the new server. The
// LISTEN fan-out's listener moves too.
func TestConsoleReloadChangedServerClosesOnRelease(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			sock := t.TempDir()
			const pool = "min_size: 0\n      max_size: 4"
			h := startConfig(t, sock, consoleText(t, sock, mode, pool, ""))
			h.srv.SetOperator(proxy.Operator{Version: "test", Reload: func() error {
				cfg, err := config.Parse([]byte(consoleText(t, sock, mode, pool, "    dbname: postgres\n")), sluicetest.NoEnv)
				if err != nil {
					return err
				}
				return h.srv.Reload(cfg)
			}})
			ctx := context.Background()
			adm := adminConn(t, h)
			if mode == "transaction" { // a LISTEN opens the pool's listener connection
				query(t, h.connect(ctx), "LISTEN console_reload_ch")
			}
			listenerPID := func() string {
				for _, r := range consoleRows(t, adm, "SHOW SERVERS") {
					if r["state"] == "listen" {
						return r["remote_pid"]
					}
				}
				return ""
			}
			oldListener := ""
			if mode == "transaction" {
				require.Eventually(t, func() bool { oldListener = listenerPID(); return oldListener != "" }, waitLong, tick)
			}

			held := h.connect(ctx)
			query(t, held, "BEGIN")
			heldPID := query(t, held, "SELECT pg_backend_pid()")[0]
			other := h.connect(ctx)
			otherPID := query(t, other, "SELECT pg_backend_pid()")[0]
			require.NotEqual(t, heldPID, otherPID)
			if mode == "session" {
				require.NoError(t, other.Close(ctx)) // its connection goes idle
			}
			require.Eventually(t, func() bool {
				r := serverRow(t, adm, otherPID)
				return r != nil && r["state"] == "idle"
			}, waitLong, tick)
			_, err := consoleExec(t, adm, "RELOAD")
			require.NoError(t, err)
			row := serverRow(t, adm, heldPID)
			require.NotNil(t, row, "the lent connection stays with its client")
			require.Equal(t, "1", row["close_needed"], "and is closed when released")
			require.Nil(t, serverRow(t, adm, otherPID), "the idle connection to the old server is closed at once")
			require.Equal(t, []string{pgtest.AppDB}, query(t, held, "SELECT current_database()"), "the client keeps its transaction")
			query(t, held, "COMMIT")
			if mode == "session" {
				require.NoError(t, held.Close(ctx))
			}
			require.Eventually(t, func() bool { return serverRow(t, adm, heldPID) == nil }, waitLong, tick,
				"released, the retired connection is closed")
			fresh := h.connect(ctx)
			require.Equal(t, []string{"postgres"}, query(t, fresh, "SELECT current_database()"), "new clients reach the new server")
			if mode == "transaction" {
				require.Equal(t, []string{"postgres"}, query(t, held, "SELECT current_database()"))
				require.Eventually(t, func() bool { p := listenerPID(); return p != "" && p != oldListener }, waitLong, tick,
					"the listener moves to the new server")
			}
		})
	}
}
