package proxy_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

func TestPoolExhaustedWithoutBorrowTimeoutIsRefusedAtOnce(t *testing.T) {
	h := start(t, "min_size: 0\n      max_size: 1\n      borrow_timeout: 0s")
	ctx := context.Background()
	h.connect(ctx)
	_, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.Equal(t, "53300", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), "borrow_timeout")
}

func TestWaitersGetTheConnectionInTurnOrTimeOut(t *testing.T) {
	h := start(t, "min_size: 0\n      max_size: 1\n      borrow_timeout: 2s")
	ctx := context.Background()
	first, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)

	second := make(chan *pgconn.PgConn, 1)
	go func() {
		c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
		if err != nil {
			t.Errorf("second client: %v", err)
		}
		second <- c
	}()
	require.Eventually(t, func() bool { return h.srv.PoolStats()[0].Waiting == 1 }, time.Minute, 5*time.Millisecond)
	require.NoError(t, first.Close(ctx)) // hand-off to the waiting second client
	c2 := <-second
	require.NotNil(t, c2)
	defer c2.Close(ctx)
	require.Equal(t, []string{"1"}, query(t, c2, "SELECT 1"))

	// A third client waits past borrow_timeout and is refused.
	_, err = pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.Equal(t, "53300", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), "pool.borrow_timeout (2s)")
}

func TestTerminatedIdleServerConnectionsAreNeverHandedOut(t *testing.T) {
	h := start(t, "min_size: 5\n      max_size: 10")
	ctx := context.Background()
	require.Eventually(t, func() bool { return h.srv.PoolStats()[0].Idle == 5 }, 30*time.Second, 10*time.Millisecond)
	cl := pgtest.Cluster(t)
	rows, err := cl.Query(ctx, "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'")
	require.NoError(t, err)
	require.Len(t, rows, 5)
	pids := make([]string, len(rows))
	for i, r := range rows {
		pids[i] = r[0]
	}
	// pg_terminate_backend only signals: wait until those backends are gone
	// (their FATAL message and EOF are then on sluice's sockets).
	require.Eventually(t, func() bool {
		left, err := cl.Query(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid IN ("+strings.Join(pids, ",")+")")
		return err == nil && left[0][0] == "0"
	}, 30*time.Second, 10*time.Millisecond)
	for i := range 20 {
		c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
		require.NoError(t, err, "client %d", i)
		require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"), "client %d", i)
		require.NoError(t, c.Close(ctx))
	}
}

// Bad input gets an error or a timeout and a log line, and never disturbs
// other clients. The login timeout is short so that the silent client is
// timed out soon, but not 1s: pgbench's own logins (SCRAM, and a server
// connection to open) must fit in it on a loaded machine. pgbench runs a
// transaction count, not a duration: its -T clock starts before its
// logins, so slow logins could leave it no time to run.
func TestBadClientsDoNotDisturbOthers(t *testing.T) {
	h := startWith(t, "min_size: 2\n      max_size: 60", "limits:\n  client_login_timeout: 3s\n")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Runs while the bad clients act (a few seconds on an idle machine).
		out := pgbench(t, h, "-S", "-c", "8", "-j", "2", "-t", "2000")
		if !strings.Contains(out, "number of transactions actually processed: 16000/16000") {
			t.Errorf("pgbench did not process every transaction:\n%s", out)
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", h.port)
	read := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var buf [512]byte
		n, _ := c.Read(buf[:])
		return string(buf[:n])
	}

	big, err := net.Dial("tcp", addr) // 40 kB startup packet
	require.NoError(t, err)
	pkt := make([]byte, 40000)
	binary.BigEndian.PutUint32(pkt, 40000)
	binary.BigEndian.PutUint32(pkt[4:], 196608)
	big.Write(pkt)
	require.Contains(t, read(big), "08P01")
	big.Close()

	garbage, err := net.Dial("tcp", addr) // random bytes
	require.NoError(t, err)
	junk := make([]byte, 256)
	rand.Read(junk)
	junk[0], junk[1] = 0, 0 // a length of at most 64 kB so it is parsed, not just refused
	garbage.Write(junk)
	reply := read(garbage)
	require.True(t, reply == "" || strings.Contains(reply, "08P01") || strings.Contains(reply, "0A000") || strings.Contains(reply, "28000"), "%q", reply)
	garbage.Close()

	silent, err := net.Dial("tcp", addr) // sends nothing: timed out by client_login_timeout
	require.NoError(t, err)
	require.Equal(t, "", read(silent))
	silent.Close()

	wg.Wait()
	logs := h.logs.String()
	require.Contains(t, logs, "invalid length of startup packet")
	require.Contains(t, logs, "i/o timeout")
}

func serverPIDs(t *testing.T) map[string]bool {
	rows, err := pgtest.Cluster(t).Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' AND application_name = ''")
	require.NoError(t, err)
	pids := map[string]bool{}
	for _, r := range rows {
		pids[r[0]] = true
	}
	return pids
}

// With idle_timeout and health_check_period both 1s, every pass finds all
// idle connections stale: it closes them and dials replacements one at a
// time, so the pool keeps cycling through 3, 0, 1, 2, 3 idle. On a loaded
// machine a dial is slow and a pg_stat_activity query can land anywhere
// in that cycle (it once saw 1 PID right after the pool showed 3 idle), so
// the test only takes observations in which the pool's own counters show
// nothing was recycled or removed while pg_stat_activity was read.
func TestHealthCheckReplacesIdleConnectionsWhileMinSizeHolds(t *testing.T) {
	h := start(t, "min_size: 3\n      max_size: 5\n      idle_timeout: 1s\n      health_check_period: 1s")
	// settled returns the app's server PIDs read while the pool held at
	// least 3 open connections and closed none, or nil if it was cycling.
	settled := func() map[string]bool {
		before := h.srv.PoolStats()[0]
		pids := serverPIDs(t)
		after := h.srv.PoolStats()[0]
		if before.Idle+before.Busy < 3 || after.Idle+after.Busy < 3 ||
			before.Recycled != after.Recycled || before.DeadRemoved != after.DeadRemoved {
			return nil
		}
		return pids
	}
	var first map[string]bool
	require.Eventually(t, func() bool { first = settled(); return len(first) == 3 }, 2*time.Minute, 10*time.Millisecond,
		"min_size connections were never all open at once")
	require.Eventually(t, func() bool {
		now := settled()
		for pid := range now {
			if first[pid] {
				return false
			}
		}
		return len(now) >= 3
	}, 2*time.Minute, 100*time.Millisecond, "idle server connections were not replaced, or the pool did not return to min_size")
	require.NotZero(t, h.srv.PoolStats()[0].Recycled)
}

// Garbage after login: a frame with an impossible length gets 08P01 and
// the connection is closed; the server connection is not reused.
func TestGarbageAfterLoginGetsProtocolViolation(t *testing.T) {
	h := start(t, "")
	pc, err := pgconn.Connect(context.Background(), h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	hj, err := pc.Hijack()
	require.NoError(t, err)
	defer hj.Conn.Close()
	_, err = hj.Conn.Write([]byte{'Q', 0, 0, 0, 1})
	require.NoError(t, err)
	hj.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf [512]byte
	n, _ := hj.Conn.Read(buf[:])
	require.Contains(t, string(buf[:n]), "08P01")
	require.Contains(t, string(buf[:n]), "invalid frontend message")
}

// Cancel requests are served even when max_client_connections is reached.
func TestCancelWorksAtTheClientLimit(t *testing.T) {
	h := startWith(t, "", "limits:\n  max_client_connections: 1\n")
	ctx := context.Background()
	c := h.connect(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
		res <- err
	}()
	// Cancel until it takes effect (the query may not have started yet).
	deadline := time.After(20 * time.Second)
	for {
		require.NoError(t, c.CancelRequest(ctx))
		select {
		case err := <-res:
			require.Equal(t, "57014", pgCode(err), "%v", err)
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("the cancel never took effect")
		}
	}
}
