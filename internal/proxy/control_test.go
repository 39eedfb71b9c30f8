package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// waitFor polls cond until it holds; the minute is a guard against a
// hang on a loaded machine, not a measured limit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waiting is how many borrows of appdb's pools queue.
func (h *harness) waiting() int {
	n := 0
	for _, p := range h.srv.PoolStats() {
		if p.Database == pgtest.AppDB {
			n += p.Waiting
		}
	}
	return n
}

func countRows(t *testing.T, table string) int {
	t.Helper()
	rows, err := pgtest.Cluster(t).QueryDB(context.Background(), pgtest.AppDB, "SELECT count(*) FROM "+table)
	require.NoError(t, err)
	n, err := strconv.Atoi(rows[0][0])
	require.NoError(t, err)
	return n
}

// PAUSE under pgbench in transaction mode: once it returns no transaction
// completes (the rows pgbench inserts stop growing) even past
// borrow_timeout, RESUME lets them go on, and pgbench ends with every
// transaction processed and none failed.
func TestPauseHoldsTransactionsUnderPgbench(t *testing.T) {
	// min_size: the connections are opened before pgbench starts, so
	// that a slow login (a loaded machine) does not spend a borrow's
	// borrow_timeout before the pause.
	h := start(t, "max_size: 4\n      min_size: 4\n      borrow_timeout: 3s\n    pool_mode: transaction")
	ctx := context.Background()
	c := h.connect(ctx)
	query(t, c, "DROP TABLE IF EXISTS ctl_pause")
	query(t, c, "CREATE TABLE ctl_pause(client int)")
	script := filepath.Join(t.TempDir(), "insert.sql")
	require.NoError(t, os.WriteFile(script, []byte("INSERT INTO ctl_pause VALUES (:client_id);\n"), 0o600))

	// -R: at 1000 transactions a second in all, pgbench cannot finish
	// its 3000 before the pause, however fast the machine is.
	out := make(chan string, 1)
	go func() {
		cmd := exec.Command("pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-n",
			"-f", script, "-c", "10", "-j", "2", "-t", "300", "-R", "1000", pgtest.AppDB)
		cmd.Env = append(cmd.Environ(), "PGPASSWORD="+pgtest.AppPassword)
		b, err := cmd.CombinedOutput()
		out <- fmt.Sprintf("%s\nerr: %v", b, err)
	}()
	waitFor(t, "pgbench to insert", func() bool { return countRows(t, "ctl_pause") > 100 })

	require.NoError(t, h.srv.Pause(ctx, pgtest.AppDB))
	require.True(t, h.srv.State(pgtest.AppDB).Paused)
	require.NoError(t, h.srv.Pause(ctx, ""), "PAUSE of all while one database is paused is allowed (PgBouncer)")
	require.EqualError(t, h.srv.Pause(ctx, ""), "already suspended/paused")
	require.NoError(t, h.srv.Resume(""))
	require.True(t, h.srv.State(pgtest.AppDB).Paused, "RESUME ends only PAUSE; PAUSE appdb needs RESUME appdb")
	waitFor(t, "every pgbench client to be held", func() bool { return h.waiting() == 10 })
	held := countRows(t, "ctl_pause")
	time.Sleep(3500 * time.Millisecond) // longer than borrow_timeout: held clients must not fail
	require.Equal(t, held, countRows(t, "ctl_pause"), "no transaction completes while paused")
	require.Equal(t, 10, h.waiting())

	require.NoError(t, h.srv.Resume(pgtest.AppDB))
	require.EqualError(t, h.srv.Resume(pgtest.AppDB), "database appdb is not paused")
	res := <-out
	require.Contains(t, res, "number of transactions actually processed: 3000/3000", res)
	require.Regexp(t, regexp.MustCompile(`number of failed transactions: 0 `), res)
	require.Contains(t, res, "err: <nil>")
	require.Equal(t, 3000, countRows(t, "ctl_pause"))
	require.Greater(t, 3000, held, "the pause held pgbench before it finished")
	query(t, c, "DROP TABLE ctl_pause")
}

// In session mode a session holds its server connection for its whole
// life: PAUSE waits for it to end (bounded by ctx), new sessions are held
// meanwhile and go on after RESUME.
func TestPauseSessionModeWaitsForSessions(t *testing.T) {
	h := start(t, "max_size: 4\n      borrow_timeout: 1s")
	ctx := context.Background()
	a, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	query(t, a, "SELECT 1")

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = h.srv.Pause(short, pgtest.AppDB)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, true, h.srv.State(pgtest.AppDB).Pausing)

	type conn struct {
		c   *pgconn.PgConn
		err error
	}
	late := make(chan conn, 1)
	go func() {
		c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
		late <- conn{c, err}
	}()
	waitFor(t, "the new session to be held", func() bool { return h.waiting() == 1 })

	paused := make(chan error, 1)
	go func() { paused <- h.srv.Pause(ctx, pgtest.AppDB) }()
	require.NoError(t, a.Close(ctx)) // the session ends: its connection is released
	require.NoError(t, <-paused)
	require.True(t, h.srv.State(pgtest.AppDB).Paused)

	require.NoError(t, h.srv.Resume(pgtest.AppDB))
	l := <-late
	require.NoError(t, l.err)
	defer l.c.Close(ctx)
	require.Equal(t, []string{"1"}, query(t, l.c, "SELECT 1"))
}

func backendPID(t *testing.T, c *pgconn.PgConn) string {
	t.Helper()
	return query(t, c, "SELECT pg_backend_pid()")[0]
}

func pidAlive(t *testing.T, pid string) bool {
	t.Helper()
	rows, err := pgtest.Cluster(t).Query(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid)
	require.NoError(t, err)
	return rows[0][0] == "1"
}

// RECONNECT closes an idle server connection at once and a busy one when
// its transaction ends; the clients notice nothing but new backend PIDs,
// and WAIT_CLOSE returns once the old ones are gone.
func TestReconnectReplacesServerConnections(t *testing.T) {
	h := start(t, "max_size: 2\n    pool_mode: transaction")
	ctx := context.Background()
	busy, idle := h.connect(ctx), h.connect(ctx)
	query(t, busy, "BEGIN")
	busyPID := backendPID(t, busy)
	idlePID := backendPID(t, idle) // released at once: idle in the pool
	require.NotEqual(t, busyPID, idlePID)
	require.NoError(t, h.srv.WaitClose(ctx, pgtest.AppDB), "nothing to wait for before RECONNECT")

	require.NoError(t, h.srv.Reconnect(pgtest.AppDB))
	waitFor(t, "the idle connection to close", func() bool { return !pidAlive(t, idlePID) })
	require.Equal(t, busyPID, backendPID(t, busy), "a transaction keeps its connection")

	closed := make(chan error, 1)
	go func() { closed <- h.srv.WaitClose(ctx, pgtest.AppDB) }()
	select {
	case err := <-closed:
		t.Fatalf("WaitClose returned (%v) while a retired connection is in a transaction", err)
	default:
	}
	query(t, busy, "COMMIT")
	require.NoError(t, <-closed)
	require.False(t, pidAlive(t, busyPID), "closed when released")

	for _, c := range []*pgconn.PgConn{busy, idle} {
		pid := backendPID(t, c)
		require.NotContains(t, []string{busyPID, idlePID}, pid, "a new server connection")
	}
	require.EqualError(t, h.srv.Reconnect("nosuchdb"), "no such database: nosuchdb")
}

// The error a client receives, with its SQLSTATE.
func pgErr(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "want a PostgreSQL error, got %v", err)
	return pe
}

// KILL drops the database's clients (57P01, administrator command) and
// its server connections; new clients wait until RESUME, as PgBouncer's.
func TestKillDropsClientsAndServers(t *testing.T) {
	h := start(t, "max_size: 4")
	ctx := context.Background()
	a := h.connect(ctx)
	pid := backendPID(t, a)

	require.NoError(t, h.srv.Kill(pgtest.AppDB))
	_, err := a.Exec(ctx, "SELECT 1").ReadAll()
	pe := pgErr(t, err)
	require.Equal(t, "57P01", pe.Code)
	require.Equal(t, "terminating connection due to administrator command", pe.Message)
	waitFor(t, "the server connection to close", func() bool { return !pidAlive(t, pid) })
	require.EqualError(t, h.srv.Kill("nosuchdb"), "no such database: nosuchdb")

	late := make(chan error, 1)
	go func() {
		c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
		if err == nil {
			_, err = c.Exec(ctx, "SELECT 1").ReadAll()
			c.Close(ctx)
		}
		late <- err
	}()
	waitFor(t, "a new client to wait for RESUME", func() bool { return h.waiting() == 1 })
	require.NoError(t, h.srv.Resume(pgtest.AppDB))
	require.NoError(t, <-late)
}

// KILL_CLIENT drops one client by id; the other goes on.
func TestKillClientDropsOneClient(t *testing.T) {
	h := start(t, "max_size: 4")
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	query(t, a, "SELECT 1")
	query(t, b, "SELECT 1")
	id := h.srv.ClientIDOf(a.Conn().LocalAddr().(*net.TCPAddr).Port)
	require.NotZero(t, id)

	require.NoError(t, h.srv.KillClient(id))
	_, err := a.Exec(ctx, "SELECT 1").ReadAll()
	require.Equal(t, "57P01", pgErr(t, err).Code)
	require.Equal(t, []string{"2"}, query(t, b, "SELECT 2"))
	port := a.Conn().LocalAddr().(*net.TCPAddr).Port
	waitFor(t, "the killed session to end", func() bool { return h.srv.ClientIDOf(port) == 0 })
	require.EqualError(t, h.srv.KillClient(id), fmt.Sprintf("no such client: %d", id))
}

// DISABLE refuses new clients with PgBouncer's text (SQLSTATE 55000);
// connected ones go on; ENABLE ends it.
func TestDisableRefusesNewClients(t *testing.T) {
	h := start(t, "max_size: 4\n    pool_mode: transaction")
	ctx := context.Background()
	a := h.connect(ctx)
	require.NoError(t, h.srv.Disable(pgtest.AppDB))
	require.True(t, h.srv.State(pgtest.AppDB).Disabled)

	_, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	pe := pgErr(t, err)
	require.Equal(t, "55000", pe.Code)
	require.Equal(t, "database does not allow connections: appdb", pe.Message)
	require.Equal(t, 1.0, refusals(t, h, "database_disabled"))
	require.Equal(t, []string{"1"}, query(t, a, "SELECT 1"), "connected clients go on")

	require.NoError(t, h.srv.Enable(pgtest.AppDB))
	b := h.connect(ctx)
	require.Equal(t, []string{"1"}, query(t, b, "SELECT 1"))
	require.EqualError(t, h.srv.Disable(""), "a database is required")
	require.EqualError(t, h.srv.Disable("nosuchdb"), "no such database: nosuchdb")
}

// Shutdown while paused tells the held clients at once that sluice is
// shutting down, instead of holding them until shutdown_timeout.
func TestShutdownReleasesHeldClients(t *testing.T) {
	h := start(t, "max_size: 4\n    pool_mode: transaction")
	ctx := context.Background()
	a := h.connect(ctx)
	require.NoError(t, h.srv.Pause(ctx, pgtest.AppDB))
	got := make(chan error, 1)
	go func() { _, err := a.Exec(ctx, "SELECT 1").ReadAll(); got <- err }()
	waitFor(t, "the client to be held", func() bool { return h.waiting() == 1 })

	stop, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	done := make(chan struct{})
	go func() { h.srv.Shutdown(stop); close(done) }()
	pe := pgErr(t, <-got)
	require.Equal(t, "57P01", pe.Code)
	require.Contains(t, pe.Message, "shutting down")
	<-done
}
