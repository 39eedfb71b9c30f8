package proxy_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// startConsole starts sluice with the admin console on: app may run
// everything, md5user only SHOW. poolMode is appdb's pool_mode.
func startConsole(t *testing.T, poolMode string) *harness {
	t.Helper()
	sock := t.TempDir()
	text := strings.Replace(configText(t, sock, "min_size: 1\n      max_size: 10", ""),
		"admin:\n  address: \"\"\n", "admin:\n  address: \"\"\n  users: [app]\n  stats_users: [md5user]\n", 1)
	text = strings.Replace(text, "    pool:\n", "    pool_mode: "+poolMode+"\n    pool:\n", 1)
	return startConfig(t, sock, text+"log:\n  level: debug\n")
}

// consoleDSN connects to the console database db as user.
func (h *harness) consoleDSN(db, user, password string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", h.port, user, password, db)
}

// psqlConsole runs one console command with psql (header and rows,
// unaligned, "|" between fields).
func psqlConsole(t *testing.T, h *harness, db, user, password, command string) (string, error) {
	t.Helper()
	return psqlRaw(t, []string{"PGPASSWORD=" + password}, "-X", "-A", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", user, "-d", db, "-c", command)
}

// psqlRaw runs psql with args as given and env added.
func psqlRaw(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("psql", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Conditions are waited for, never timed: the bound only ends a test
// that would otherwise hang.
const (
	waitLong = time.Minute
	tick     = 10 * time.Millisecond
)

// psqlRow finds, in psql's unaligned output (a header line, then rows,
// "|" between fields), the first row whose column key is value (and, if
// given, whose columns also[0] is also[1]), by column name.
func psqlRow(t *testing.T, out, key, value string, also ...string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.NotEmpty(t, lines)
	header := strings.Split(lines[0], "|")
	for _, l := range lines[1:] {
		row := map[string]string{}
		for i, f := range strings.Split(l, "|") {
			if i < len(header) {
				row[header[i]] = f
			}
		}
		if row[key] == value && (len(also) < 2 || row[also[0]] == also[1]) {
			return row
		}
	}
	t.Fatalf("no row with %s = %s in:\n%s", key, value, out)
	return nil
}

// consoleExec runs a simple-protocol command over pgconn.
func consoleExec(t *testing.T, c *pgconn.PgConn, sql string) (*pgconn.Result, error) {
	t.Helper()
	rs, err := c.Exec(context.Background(), sql).ReadAll()
	if err != nil {
		return nil, err
	}
	require.Len(t, rs, 1)
	return rs[0], nil
}

func TestConsoleShowPoolsWithPsql(t *testing.T) {
	h := startConsole(t, "transaction")
	app := h.connect(context.Background())
	require.Equal(t, []string{"1"}, query(t, app, "SELECT 1"))
	for _, db := range []string{"sluice", "pgbouncer"} {
		out, err := psqlConsole(t, h, db, pgtest.AppUser, pgtest.AppPassword, "SHOW POOLS;")
		require.NoError(t, err, out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.True(t, strings.HasPrefix(lines[0], "database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode|"), lines[0])
		var row []string
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, pgtest.AppDB+"|"+pgtest.AppUser+"|") {
				row = strings.Split(l, "|")
			}
		}
		require.NotNil(t, row, "SHOW POOLS lists appdb/app:\n%s", out)
		require.Equal(t, "0", row[2], "cl_active: the client is idle between transactions")
		require.Equal(t, "transaction", row[15])
		idle, _ := strconv.Atoi(row[9])
		require.GreaterOrEqual(t, idle, 1, "sv_idle")
		require.Equal(t, "1", row[18], "cl_idle: sluice's own column")
	}
}

func TestConsoleEveryShowWithPsql(t *testing.T) {
	h := startConsole(t, "session")
	app := h.connect(context.Background())
	query(t, app, "SELECT 1")
	for _, view := range []string{"POOLS", "CLIENTS", "SERVERS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "DATABASES",
		"USERS", "CONFIG", "LISTS", "VERSION", "STATE", "TOPOLOGY", "PINS", "PEERS", "FAILOVER", "HELP"} {
		for _, user := range [][2]string{{pgtest.AppUser, pgtest.AppPassword}, {pgtest.MD5User, pgtest.MD5Password}} {
			out, err := psqlConsole(t, h, "sluice", user[0], user[1], "show "+strings.ToLower(view))
			require.NoError(t, err, "SHOW %s as %s: %s", view, user[0], out)
		}
	}
	out, err := psqlConsole(t, h, "sluice", pgtest.AppUser, pgtest.AppPassword, "SHOW CLIENTS")
	require.NoError(t, err, out)
	require.Contains(t, out, "|"+pgtest.AppUser+"|"+pgtest.AppDB+"|active|127.0.0.1|", "the session-mode client holds its server connection")
	require.Contains(t, out, "|"+pgtest.AppUser+"|sluice|active|", "the console client itself")
	out, err = psqlConsole(t, h, "sluice", pgtest.AppUser, pgtest.AppPassword, "SHOW SERVERS")
	require.NoError(t, err, out)
	require.Contains(t, out, "S|"+pgtest.AppUser+"|"+pgtest.AppDB+"|active|")
	out, err = psqlConsole(t, h, "sluice", pgtest.AppUser, pgtest.AppPassword, "SHOW CONFIG")
	require.NoError(t, err, out)
	require.Contains(t, out, "max_client_conn|10000|10000|yes")
	require.NotContains(t, out, pgtest.AppPassword)
	out, err = psqlConsole(t, h, "sluice", pgtest.AppUser, pgtest.AppPassword, "SHOW HELP")
	require.NoError(t, err, out)
	require.Contains(t, out, "SHOW HELP|CONFIG|DATABASES")
}

// TestConsoleStatsCount: SHOW STATS counts queries and transactions in
// both pool modes (from the pool's metrics), the time transactions held
// a server connection in transaction mode, and bytes in session mode.
func TestConsoleStatsCount(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			h := startConsole(t, mode)
			ctx := context.Background()
			c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
			require.NoError(t, err)
			for range 3 {
				query(t, c, "SELECT 1")
			}
			require.NoError(t, c.Close(ctx))
			adm, err := pgconn.Connect(ctx, h.consoleDSN("pgbouncer", pgtest.AppUser, pgtest.AppPassword))
			require.NoError(t, err)
			defer adm.Close(ctx)
			var res *pgconn.Result
			col := func(name string) int {
				for i, f := range res.FieldDescriptions {
					if f.Name == name {
						n, err := strconv.Atoi(string(res.Rows[0][i]))
						require.NoError(t, err, name)
						return n
					}
				}
				t.Fatalf("no column %s", name)
				return 0
			}
			require.Eventually(t, func() bool { // session mode's bytes are added when the session ends
				res, err = consoleExec(t, adm, "SHOW STATS")
				require.NoError(t, err)
				return len(res.Rows) == 1 && col("total_query_count") >= 3 && (mode != "session" || col("total_received") > 0)
			}, waitLong, tick)
			require.GreaterOrEqual(t, col("total_xact_count"), 3, "each autocommit SELECT is a transaction")
			if mode == "transaction" {
				require.Greater(t, col("total_xact_time"), 0, "transaction mode: time holding a server connection")
			} else {
				require.Greater(t, col("total_query_time"), 0, "session mode: time from request to ReadyForQuery")
			}
			require.Equal(t, uint32(20), res.FieldDescriptions[1].DataTypeOID, "counters are int8, as PgBouncer sends them")
		})
	}
}

// waitOnePin waits until the console's SHOW PINS lists one client (pins
// are noted when the server loop detaches, after the client has its
// answer) and returns the view.
func waitOnePin(t *testing.T, adm *pgconn.PgConn, what string) *pgconn.Result {
	t.Helper()
	var res *pgconn.Result
	require.Eventually(t, func() bool {
		var err error
		res, err = consoleExec(t, adm, "SHOW PINS")
		require.NoError(t, err)
		return len(res.Rows) == 1
	}, waitLong, tick, what)
	return res
}

func TestConsoleShowPinsAndClientIDs(t *testing.T) {
	h := startConsole(t, "transaction")
	ctx := context.Background()
	app := h.connect(ctx)
	query(t, app, "CREATE TEMP TABLE pinned_here (x int)")
	adm, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)
	res := waitOnePin(t, adm, "the client with a temporary table is pinned")
	require.Equal(t, "temp_table", string(res.Rows[0][4]))
	id := string(res.Rows[0][0])
	res, err = consoleExec(t, adm, "SHOW CLIENTS")
	require.NoError(t, err)
	found := false
	for _, r := range res.Rows {
		if string(r[19]) == id { // id, PgBouncer's column
			found = true
			require.Equal(t, pgtest.AppDB, string(r[2]))
			require.Equal(t, "temp_table", string(r[22]))
		}
	}
	require.True(t, found, "SHOW PINS' id is SHOW CLIENTS' id")
}

func TestConsoleAccess(t *testing.T) {
	h := startConsole(t, "session")
	ctx := context.Background()
	// A stats user may SHOW, not command.
	st, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.MD5User, pgtest.MD5Password))
	require.NoError(t, err)
	defer st.Close(ctx)
	_, err = consoleExec(t, st, "SHOW POOLS")
	require.NoError(t, err)
	_, err = consoleExec(t, st, "PAUSE")
	require.Equal(t, "42501", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), "admin access needed")
	_, err = consoleExec(t, st, "SHOW VERSION")
	require.NoError(t, err, "the session goes on after an error")

	// A wrong password is refused as for any database.
	_, err = pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, "wrong"))
	require.Equal(t, "28P01", pgCode(err), "%v", err)
}

func TestConsoleRefusesUsersNotListed(t *testing.T) {
	// Only app is an admin: a config where md5user is neither.
	h2 := func() *harness {
		s := t.TempDir()
		text := strings.Replace(configText(t, s, "", ""), "admin:\n  address: \"\"\n", "admin:\n  address: \"\"\n  users: [app]\n", 1)
		return startConfig(t, s, text)
	}()
	_, err := pgconn.Connect(context.Background(), h2.consoleDSN("sluice", pgtest.MD5User, pgtest.MD5Password))
	require.Equal(t, "42501", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), `permission denied for database "sluice"`)
	// Without console users, "sluice" is an unknown database as before.
	h3 := start(t, "")
	_, err = pgconn.Connect(context.Background(), h3.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.Equal(t, "3D000", pgCode(err), "%v", err)
}

func TestConsoleBadInput(t *testing.T) {
	h := startConsole(t, "session")
	ctx := context.Background()
	adm, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)
	for _, q := range []string{"SELECT 1", "SHOW POOLS; SHOW STATS", "SHOW NOTHING", "BEGIN"} {
		_, err = consoleExec(t, adm, q)
		require.Equal(t, "08P01", pgCode(err), "%s: %v", q, err)
		require.Contains(t, err.Error(), "invalid command '", q)
		require.Contains(t, err.Error(), "use SHOW HELP;", q)
	}
	// The extended protocol is refused clearly, and the session goes on.
	err = adm.ExecParams(ctx, "SHOW POOLS", nil, nil, nil, nil).Read().Err
	require.Equal(t, "0A000", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), "simple query protocol")
	_, err = consoleExec(t, adm, "show version;")
	require.NoError(t, err)
	_, err = consoleExec(t, adm, "SET client_encoding = 'UTF8'")
	require.NoError(t, err, "drivers' SET is ignored, as PgBouncer does")
}

// TestConsoleCommandsDispatch checks that each command reaches the
// proxy: an unknown database is refused before it, and each command on
// a known database runs and answers with its own tag.
func TestConsoleCommandsDispatch(t *testing.T) {
	h := startConsole(t, "transaction")
	ctx := context.Background()
	adm, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)
	for _, cmd := range []string{"PAUSE nosuchdb", "RESUME nosuchdb", "DISABLE nosuchdb", "KILL nosuchdb", "SWITCHOVER nosuchdb"} {
		_, err = consoleExec(t, adm, cmd)
		require.Equal(t, "42704", pgCode(err), "%s: %v", cmd, err)
		require.Contains(t, err.Error(), `database "nosuchdb" does not exist`)
	}
	for _, cmd := range []string{"PAUSE appdb", "RESUME appdb", "RECONNECT appdb", "WAIT_CLOSE appdb", "DISABLE appdb", "ENABLE appdb"} {
		res, err := consoleExec(t, adm, cmd)
		require.NoError(t, err, cmd)
		require.Equal(t, strings.Fields(cmd)[0], res.CommandTag.String(), cmd)
	}
	_, err = consoleExec(t, adm, "RESUME appdb")
	require.Error(t, err, "RESUME of a database that is not paused")
	require.Contains(t, err.Error(), "is not paused")
	_, err = consoleExec(t, adm, "KILL_CLIENT 999999")
	require.Error(t, err, "KILL_CLIENT of an id no client has")
	require.Contains(t, err.Error(), "no such client")
	res, err := consoleExec(t, adm, "RELOAD")
	require.Error(t, err, "no operator: started without a file")
	require.Nil(t, res)
}

// TestConsolePauseResumeUnderPgbench is the acceptance run, as an
// operator does it: psql sends PAUSE appdb to the console while pgbench
// writes through sluice in transaction mode; no transaction completes
// while paused, none fails, and RESUME lets pgbench finish every one.
func TestConsolePauseResumeUnderPgbench(t *testing.T) {
	h := startConsole(t, "transaction")
	ctx := context.Background()
	c := h.connect(ctx)
	query(t, c, "DROP TABLE IF EXISTS console_pause")
	query(t, c, "CREATE TABLE console_pause(client int)")
	script := t.TempDir() + "/insert.sql"
	require.NoError(t, os.WriteFile(script, []byte("INSERT INTO console_pause VALUES (:client_id);\n"), 0o600))
	out := make(chan string, 1)
	go func() {
		// -R: pgbench cannot finish its 2000 before the pause.
		cmd := exec.Command("pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-n",
			"-f", script, "-c", "8", "-j", "2", "-t", "250", "-R", "800", pgtest.AppDB)
		cmd.Env = append(cmd.Environ(), "PGPASSWORD="+pgtest.AppPassword)
		b, err := cmd.CombinedOutput()
		out <- fmt.Sprintf("%s\nerr: %v", b, err)
	}()
	waitFor(t, "pgbench to insert", func() bool { return countRows(t, "console_pause") > 100 })

	got, err := psqlConsole(t, h, "sluice", pgtest.AppUser, pgtest.AppPassword, "PAUSE appdb")
	require.NoError(t, err, got)
	require.Contains(t, got, "PAUSE")
	got, err = psqlConsole(t, h, "pgbouncer", pgtest.AppUser, pgtest.AppPassword, "SHOW DATABASES")
	require.NoError(t, err, got)
	db := psqlRow(t, got, "name", "appdb")
	require.Equal(t, "1", db["paused"], "SHOW DATABASES shows appdb paused: %s", got)
	require.Equal(t, "0", db["disabled"], got)
	waitFor(t, "every pgbench client to be held", func() bool { return h.waiting() == 8 })
	held := countRows(t, "console_pause")
	got, err = psqlConsole(t, h, "sluice", pgtest.AppUser, pgtest.AppPassword, "SHOW POOLS")
	require.NoError(t, err, got)
	pool := psqlRow(t, got, "database", "appdb", "user", pgtest.AppUser)
	require.Equal(t, "8", pool["cl_waiting"], "SHOW POOLS: %s", got)
	require.Equal(t, "1", pool["cl_idle"], "only the test's own client is idle; a held client is waiting, not idle too: %s", got)
	got, err = psqlConsole(t, h, "sluice", pgtest.AppUser, pgtest.AppPassword, "SHOW CLIENTS")
	require.NoError(t, err, got)
	require.Equal(t, 8, strings.Count(got, "|appdb|waiting|"), "SHOW CLIENTS: the 8 held clients are waiting: %s", got)
	require.Equal(t, held, countRows(t, "console_pause"), "no transaction completes while paused")

	got, err = psqlConsole(t, h, "sluice", pgtest.AppUser, pgtest.AppPassword, "RESUME appdb")
	require.NoError(t, err, got)
	res := <-out
	require.Contains(t, res, "number of transactions actually processed: 2000/2000", res)
	require.Regexp(t, `number of failed transactions: 0 `, res)
	require.Contains(t, res, "err: <nil>")
	require.Equal(t, 2000, countRows(t, "console_pause"))
	require.Greater(t, 2000, held, "the pause held pgbench before it finished")
	query(t, c, "DROP TABLE console_pause")
}

// TestConsoleClientEndsAtShutdown: a console client is told sluice is
// shutting down and let go at once, instead of holding the shutdown
// until shutdown_timeout and losing its socket without a word.
func TestConsoleClientEndsAtShutdown(t *testing.T) {
	h := startConsole(t, "session")
	ctx := context.Background()
	adm, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)
	done := make(chan struct{})
	go func() {
		h.srv.Shutdown(context.Background()) // no deadline: only the drain can end the console session
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitLong):
		t.Fatal("shutdown waited for the idle console client")
	}
	_, err = consoleExec(t, adm, "SHOW VERSION")
	require.Equal(t, "57P01", pgCode(err), "%v", err)
}

func TestConsoleIdleTimeout(t *testing.T) {
	sock := t.TempDir()
	text := strings.Replace(configText(t, sock, "", ""), "admin:\n  address: \"\"\n", "admin:\n  address: \"\"\n  users: [app]\n", 1)
	h := startConfig(t, sock, text+"limits:\n  client_idle_timeout: 200ms\n")
	ctx := context.Background()
	adm, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)
	// Read what sluice sends the silent client: the error, then EOF.
	raw := adm.Conn()
	raw.SetReadDeadline(time.Now().Add(waitLong)) // only ends a hung test
	got, _ := io.ReadAll(raw)
	require.Contains(t, string(got), "57P01")
	require.Contains(t, string(got), "limits.client_idle_timeout")
}

// TestConsoleStatsCountWaits: a client that queued for the only server
// connection shows in cl_waiting, then its wait in total_wait_time.
func TestConsoleStatsCountWaits(t *testing.T) {
	sock := t.TempDir()
	text := strings.Replace(configText(t, sock, "min_size: 1\n      max_size: 1", ""), "admin:\n  address: \"\"\n", "admin:\n  address: \"\"\n  users: [app]\n", 1)
	h := startConfig(t, sock, text)
	ctx := context.Background()
	adm, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)
	holder, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	waiter := make(chan error, 1)
	go func() {
		c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
		if err == nil {
			c.Close(ctx)
		}
		waiter <- err
	}()
	require.Eventually(t, func() bool {
		res, err := consoleExec(t, adm, "SHOW POOLS")
		require.NoError(t, err)
		for _, r := range res.Rows {
			if string(r[1]) == pgtest.AppUser && string(r[3]) == "1" { // cl_waiting
				return true
			}
		}
		return false
	}, waitLong, tick)
	require.NoError(t, holder.Close(ctx))
	require.NoError(t, <-waiter)
	res, err := consoleExec(t, adm, "SHOW STATS_TOTALS")
	require.NoError(t, err)
	require.Len(t, res.Rows, 1)
	wait, _ := strconv.Atoi(string(res.Rows[0][7]))
	require.Greater(t, wait, 0, "wait_time (µs) counts the queued borrow")
}
