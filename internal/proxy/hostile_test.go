package proxy_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// openClients is sluice's count of client sockets it holds open (logged
// in or not); evicted and refused sockets leave it when sluice closes them.
func openClients(t *testing.T, h *harness) float64 {
	return metricValue(t, h.srv.Metrics().ClientConnections)
}

// refusals is sluice_client_login_failures_total{reason}.
func refusals(t *testing.T, h *harness, reason string) float64 {
	return metricValue(t, h.srv.Metrics().ClientLoginFailure.WithLabelValues(reason))
}

// readUntilEOF reads what sluice sends until it closes the connection.
func readUntilEOF(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	b, err := io.ReadAll(c)
	require.NoError(t, err, "sluice did not close the connection")
	return string(b)
}

// Acceptance (issue 13, point 7): with max_client_connections 200, 400
// silent sockets leave a psql login working at once, and sluice holds at
// most about 200 client sockets. The oldest silent sockets make room for
// newer ones: they get 53300 and are closed.
func TestSilentSocketsDoNotKeepClientsOut(t *testing.T) {
	h := startWith(t, "", "limits:\n  max_client_connections: 200\n  client_login_timeout: 10m\n")
	addr := fmt.Sprintf("127.0.0.1:%d", h.port)
	silent := make([]net.Conn, 400)
	for i := range silent {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		silent[i] = c
	}
	// The oldest 200 made room for the newest 200.
	for i, c := range silent[:200] {
		reply := readUntilEOF(t, c)
		require.Contains(t, reply, "53300", "silent socket %d", i)
		require.Contains(t, reply, "had not logged in and made room for a newer one")
	}
	require.Eventually(t, func() bool {
		return refusals(t, h, "evicted_before_login") == 200
	}, time.Minute, 10*time.Millisecond)
	require.Eventually(t, func() bool { return openClients(t, h) == 200 }, time.Minute, 10*time.Millisecond)
	require.Zero(t, refusals(t, h, "login_timeout"), "evicted sockets are counted once")
	require.NotContains(t, h.logs.String(), "client left during startup")

	out, err := psql(t, []string{"PGPASSWORD=" + pgtest.AppPassword, "PGCONNECT_TIMEOUT=0"},
		"-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-d", pgtest.AppDB, "-c", "SELECT 40 + 2")
	require.NoError(t, err, out)
	require.Equal(t, "42\n", out)
	require.Contains(t, readUntilEOF(t, silent[200]), "53300", "psql took the oldest silent socket's slot")
	require.LessOrEqual(t, openClients(t, h), float64(200))
}

// When every slot is held by a logged-in client, one more socket (the
// cancel reserve: 1% of max_client_connections, at least 1) may still
// send a cancel request; the next is refused with 53300 at once, before
// it sends anything.
func TestClientBeyondTheLimitIsRefusedAtOnce(t *testing.T) {
	h := startWith(t, "", "limits:\n  max_client_connections: 2\n  client_login_timeout: 10m\n")
	ctx := context.Background()
	h.connect(ctx)
	h.connect(ctx)
	addr := fmt.Sprintf("127.0.0.1:%d", h.port)
	reserve, err := net.Dial("tcp", addr) // silent, on the cancel reserve
	require.NoError(t, err)
	defer reserve.Close()
	require.Eventually(t, func() bool { return openClients(t, h) == 3 }, time.Minute, 5*time.Millisecond)

	refused, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer refused.Close()
	reply := readUntilEOF(t, refused)
	require.Contains(t, reply, "53300")
	require.Contains(t, reply, "too many client connections (limits.max_client_connections = 2)")
	require.Equal(t, float64(1), refusals(t, h, "too_many_connections"))
	require.Equal(t, float64(3), openClients(t, h))

	// The reserve serves cancel requests only: a login on it is refused.
	reserve.Close()
	require.Eventually(t, func() bool { return openClients(t, h) == 2 }, time.Minute, 5*time.Millisecond)
	_, err = pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.Equal(t, "53300", pgCode(err), "%v", err)
}

// Issue 13, point 8: a flood of wrong passwords from one address, for
// another user and for names sluice does not know, over TCP and over the
// Unix socket, does not refuse a client that has the right password: it
// logs in at its first try every time. The flood itself is limited.
func TestWrongPasswordFloodDoesNotLockOutOtherUsersOnTheSameAddress(t *testing.T) {
	h := startWith(t, "", "limits:\n  auth_failures_per_minute: 1\n  auth_failure_burst: 3\n")
	ctx := context.Background()
	unix := func(user, password string) string {
		return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable", h.sock, h.port, user, password, pgtest.AppDB)
	}
	var limitedTCP, limitedUnix, n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				user := pgtest.MD5User
				if i%2 == 1 {
					user = fmt.Sprintf("nosuchuser%d_%d", w, i)
				}
				dsn, limited := h.dsn(user, "wrong"), &limitedTCP
				if w%2 == 1 {
					dsn, limited = unix(user, "wrong"), &limitedUnix
				}
				_, err := pgconn.Connect(ctx, dsn)
				n.Add(1)
				switch {
				case pgCode(err) == "28P01":
				case pgCode(err) == "28000" && strings.HasPrefix(pgMessage(err), "too many failed logins from"):
					limited.Add(1)
				default:
					t.Errorf("unexpected result of a wrong password: %v", err)
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	require.Eventually(t, func() bool { return limitedTCP.Load() > 20 && limitedUnix.Load() > 20 }, time.Minute, 5*time.Millisecond,
		"the flood is limited on both")
	for i := range 20 {
		for _, dsn := range []string{h.dsn(pgtest.AppUser, pgtest.AppPassword), unix(pgtest.AppUser, pgtest.AppPassword)} {
			before := n.Load()
			c, err := pgconn.Connect(ctx, dsn)
			require.NoError(t, err, "good login %d (%s)", i, dsn)
			require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
			require.NoError(t, c.Close(ctx))
			require.Eventually(t, func() bool { return n.Load() > before }, time.Minute, time.Millisecond, "the flood goes on")
		}
	}
}

// Issue 13, point 9: a flood of wrong passwords from one address is
// logged once in full and then summarised, while the metric counts every
// refusal.
func TestRefusalFloodIsSummarised(t *testing.T) {
	h := startWith(t, "", "limits:\n  auth_failure_burst: 0\n")
	ctx := context.Background()
	const attempts = 200
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 4 {
		wg.Go(func() {
			for range jobs {
				_, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, "wrong"))
				if pgCode(err) != "28P01" {
					t.Errorf("a wrong password got %v", err)
				}
			}
		})
	}
	for i := range attempts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	require.Equal(t, float64(attempts), refusals(t, h, "wrong_password"))
	require.Equal(t, 1, strings.Count(h.logs.String(), `msg="client refused"`), "one line in full")

	// The summary comes every 10 s, and at shutdown: however many
	// intervals the flood took, the summaries count the other 199.
	h.srv.Shutdown(ctx)
	logs := h.logs.String()
	summarised := 0
	for _, m := range regexp.MustCompile(`msg="clients refused since the last summary" remote=127.0.0.1 reason=wrong_password count=(\d+)`).FindAllStringSubmatch(logs, -1) {
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		summarised += n
	}
	require.Equal(t, attempts-1, summarised)
	require.Equal(t, 1, strings.Count(logs, `msg="client refused"`))
}

// A client that hangs up after SSL negotiation (sslmode=prefer probing)
// or before sending a byte (a TCP health check) costs no log line above
// debug and no refusal.
func TestProbingClientsAreNotLogged(t *testing.T) {
	h := startWith(t, "", "log:\n  level: info\n")
	addr := fmt.Sprintf("127.0.0.1:%d", h.port)
	sslRequest := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 80877103)
	// Each probe hangs up its sending side and waits for sluice to close
	// the connection: then sluice has dealt with it.
	hangUp := func(c net.Conn) {
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
		require.Empty(t, readUntilEOF(t, c))
		c.Close()
	}
	for range 50 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = c.Write(sslRequest)
		require.NoError(t, err)
		var b [1]byte
		_, err = io.ReadFull(c, b[:])
		require.NoError(t, err)
		require.Equal(t, byte('N'), b[0])
		hangUp(c)

		c, err = net.Dial("tcp", addr)
		require.NoError(t, err)
		hangUp(c)
	}
	c := h.connect(context.Background()) // and a real client still gets in
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
	require.NotContains(t, h.logs.String(), "client left during startup")
	require.NotContains(t, h.logs.String(), "client refused")
}

// With a refill as fast as the flood, every wrong password takes the
// last token: the "too many failed logins" warning is summarised too,
// not written once per failure.
func TestExhaustedLimitWarningIsSummarised(t *testing.T) {
	h := startWith(t, "", "limits:\n  auth_failures_per_minute: 1000000\n  auth_failure_burst: 1\n")
	ctx := context.Background()
	for range 30 {
		_, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, "wrong"))
		if code := pgCode(err); code != "28P01" {
			require.Equal(t, "28000", code, "%v", err) // a token not back yet
		}
	}
	require.Equal(t, 1, strings.Count(h.logs.String(), "too many failed logins: refusing this address"))
	require.Equal(t, 30.0, refusals(t, h, "wrong_password")+refusals(t, h, "rate_limited"))
}
