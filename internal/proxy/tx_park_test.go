package proxy_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// Parked clients (txpool's park.go): a transaction-pooled client idle for
// a full period of the hop sweep has no goroutine; its socket waits in
// an epoll set. These tests shorten the period (SetParkAfter) and wait
// for the parked count, so each fails where parking does not happen
// (the count stays 0).

const parkAfter = 20 * time.Millisecond

// startParking runs sluice in transaction mode with a short park period;
// topLevel is extra YAML at the top level.
func startParking(t *testing.T, topLevel string) *harness {
	t.Helper()
	h := startWith(t, txPool(4), topLevel)
	h.srv.SetParkAfter(parkAfter)
	return h
}

// waitParked waits until n clients are parked.
func waitParked(t *testing.T, h *harness, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d parked clients", n), func() bool { return h.srv.ParkedClients() == n })
}

// A parked client's next query is served: simple and extended protocol,
// with its prepared statements and its SET settings intact; it parks
// again after each.
func TestTxParkedClientServesItsNextQuery(t *testing.T) {
	h := startParking(t, "")
	ctx := context.Background()
	c := h.connect(ctx)
	query(t, c, "SET application_name = 'parked'")
	_, err := c.Prepare(ctx, "parked_stmt", "SELECT $1::int + 1", nil)
	require.NoError(t, err)
	waitParked(t, h, 1)

	require.Equal(t, []string{"parked"}, query(t, c, "SHOW application_name")) // simple protocol
	waitParked(t, h, 1)
	res := c.ExecPrepared(ctx, "parked_stmt", [][]byte{[]byte("41")}, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "42", string(res.Rows[0][0]))
	waitParked(t, h, 1)
	res = c.ExecParams(ctx, "SELECT current_setting('application_name') || $1::text", [][]byte{[]byte("!")}, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "parked!", string(res.Rows[0][0]))
	waitParked(t, h, 1)
	// A transaction across a park: the client holds its server
	// connection between statements, so it is not parked then.
	query(t, c, "BEGIN")
	query(t, c, "SELECT 1")
	require.Equal(t, []string{"parked"}, query(t, c, "SHOW application_name"))
	query(t, c, "COMMIT")
	waitParked(t, h, 1)
	require.Equal(t, []string{"2"}, query(t, c, "SELECT 2"))
}

// A client in a transaction (it holds a server connection) is not parked
// however long it idles; it is once the transaction ends.
func TestTxClientInATransactionIsNotParked(t *testing.T) {
	h := startParking(t, "")
	ctx := context.Background()
	idle, inTx := h.connect(ctx), h.connect(ctx)
	query(t, inTx, "BEGIN")
	query(t, inTx, "SELECT 1")
	query(t, idle, "SELECT 1")
	// The idle client is parked once idle for a full period; the client
	// in a transaction, idle since before it, is asked at every period
	// and stays.
	waitParked(t, h, 1)
	query(t, inTx, "SELECT 2")
	waitParked(t, h, 1)
	query(t, inTx, "COMMIT")
	waitParked(t, h, 2)
}

// A parked client that disconnects ends its session: with a Terminate
// message, and without one (the socket just closes: EPOLLRDHUP). The
// client gauge comes back down.
func TestTxParkedClientThatDisconnectsEndsItsSession(t *testing.T) {
	h := startParking(t, "")
	ctx := context.Background()
	before := metricValue(t, h.srv.Metrics().ClientConnections)
	polite, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	rude, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	stays := h.connect(ctx)
	query(t, polite, "SELECT 1")
	query(t, rude, "SELECT 1")
	waitParked(t, h, 3)
	require.Equal(t, before+3, metricValue(t, h.srv.Metrics().ClientConnections))

	require.NoError(t, polite.Close(ctx)) // Terminate, then close
	waitParked(t, h, 2)
	eventuallyMetric(t, h.srv.Metrics().ClientConnections, before+2)
	require.NoError(t, rude.Conn().Close()) // no Terminate
	waitParked(t, h, 1)
	eventuallyMetric(t, h.srv.Metrics().ClientConnections, before+1)
	require.Equal(t, []string{"1"}, query(t, stays, "SELECT 1"))
}

// client_idle_timeout ends a parked client with the error an idle client
// with a goroutine gets (57P01), at most one park period late.
func TestTxClientIdleTimeoutEndsAParkedClient(t *testing.T) {
	h := startParking(t, "limits:\n  client_idle_timeout: 2s\n")
	ctx := context.Background()
	before := metricValue(t, h.srv.Metrics().ClientConnections)
	c := h.connect(ctx)
	query(t, c, "SELECT 1")
	waitParked(t, h, 1)
	// Read what sluice sends the silent client: the error, then EOF.
	raw := c.Conn()
	raw.SetReadDeadline(time.Now().Add(time.Minute)) // only ends a hung test
	var got strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := raw.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	require.Contains(t, got.String(), "57P01")
	require.Contains(t, got.String(), "terminating connection due to limits.client_idle_timeout (2s)")
	waitParked(t, h, 0)
	eventuallyMetric(t, h.srv.Metrics().ClientConnections, before)
}

// Shutdown ends parked clients as it ends idle ones: at once, with 57P01,
// without waiting for its deadline.
func TestTxShutdownEndsParkedClients(t *testing.T) {
	h := startParking(t, "")
	ctx := context.Background()
	clients := []*pgconn.PgConn{h.connect(ctx), h.connect(ctx), h.connect(ctx)}
	for _, c := range clients {
		query(t, c, "SELECT 1")
	}
	waitParked(t, h, 3)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		h.srv.Shutdown(sctx)
	}()
	for _, c := range clients {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := c.WaitForNotification(wctx)
		cancel()
		require.Error(t, err)
		require.NotErrorIs(t, err, context.DeadlineExceeded, "the parked client was not ended")
		if code := pgCode(err); code != "" {
			require.Equal(t, "57P01", code)
		}
	}
	<-done
	require.NotContains(t, h.logs.String(), "shutdown timeout reached", "shutdown waited for its deadline")
	require.Equal(t, 0, h.srv.ParkedClients())
}

// KILL_CLIENT (console) ends a parked client; the others go on.
func TestTxKillClientEndsAParkedClient(t *testing.T) {
	h := startConsole(t, "transaction")
	h.srv.SetParkAfter(parkAfter)
	ctx := context.Background()
	victim, other := h.connect(ctx), h.connect(ctx)
	query(t, victim, "SELECT 1")
	query(t, other, "SELECT 1")
	port := victim.Conn().LocalAddr().(*net.TCPAddr).Port
	id := h.srv.ClientIDOf(port)
	require.NotZero(t, id)
	adm, err := pgconn.Connect(ctx, h.consoleDSN("sluice", pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer adm.Close(ctx)
	waitParked(t, h, 2)
	before := metricValue(t, h.srv.Metrics().ClientConnections)
	_, err = consoleExec(t, adm, fmt.Sprintf("KILL_CLIENT %d", id))
	require.NoError(t, err)
	waitFor(t, "the killed session to end", func() bool { return h.srv.ClientIDOf(port) == 0 })
	_, err = victim.Exec(ctx, "SELECT 1").ReadAll()
	require.Error(t, err)
	eventuallyMetric(t, h.srv.Metrics().ClientConnections, before-1)
	waitParked(t, h, 1)
	require.Equal(t, []string{"2"}, query(t, other, "SELECT 2"))
}

// A cancel request for a parked client (it runs nothing) does nothing: it
// is not woken for it, and its next query runs to the end.
func TestTxCancelRequestForAParkedClientDoesNothing(t *testing.T) {
	h := startParking(t, "")
	ctx := context.Background()
	c := h.connect(ctx)
	query(t, c, "SELECT 1")
	waitParked(t, h, 1)
	require.NoError(t, c.CancelRequest(ctx))
	require.NoError(t, c.CancelRequest(ctx))
	require.Equal(t, 1, h.srv.ParkedClients())
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1 FROM pg_sleep(0.05)"))
}

// 200 clients over 4 server connections park and wake concurrently: each
// runs statements with pauses around the park period, checking that its
// own SET setting and prepared statement survive; then all of them,
// parked, wake at once for one more statement. The race detector watches
// the hand-overs between client goroutines, the waiter and the sweep.
func TestTxManyClientsParkAndWakeConcurrently(t *testing.T) {
	h := startParking(t, "")
	ctx := context.Background()
	before := metricValue(t, h.srv.Metrics().ClientConnections)
	const n, rounds = 200, 6
	clients := make([]*pgconn.PgConn, n)
	for i := range clients {
		c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
		require.NoError(t, err)
		clients[i] = c
	}
	check := func(i int, c *pgconn.PgConn, round int) error {
		want := fmt.Sprintf("c%d", i)
		if round == 0 {
			if err := c.Exec(ctx, "SET application_name = '"+want+"'").Close(); err != nil {
				return err
			}
			if _, err := c.Prepare(ctx, "mine", "SELECT $1::int * 2, current_setting('application_name')", nil); err != nil {
				return err
			}
		}
		res := c.ExecPrepared(ctx, "mine", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil).Read()
		if res.Err != nil {
			return res.Err
		}
		if got := string(res.Rows[0][0]) + "/" + string(res.Rows[0][1]); got != fmt.Sprintf("%d/%s", 2*i, want) {
			return fmt.Errorf("client %d round %d: got %s", i, round, got)
		}
		return nil
	}
	errs := make(chan error, n)
	for i, c := range clients {
		go func() {
			for r := range rounds {
				if err := check(i, c, r); err != nil {
					errs <- err
					return
				}
				// Load shaping, not an assertion: pauses around the park
				// period make clients park and wake while others run.
				time.Sleep(time.Duration((i+r)%4) * parkAfter)
			}
			errs <- nil
		}()
	}
	for range clients {
		require.NoError(t, <-errs)
	}
	waitParked(t, h, n)
	for i, c := range clients {
		go func() { errs <- check(i, c, rounds) }()
	}
	for range clients {
		require.NoError(t, <-errs)
	}
	waitParked(t, h, n)
	for _, c := range clients {
		c.Close(ctx)
	}
	waitParked(t, h, 0)
	eventuallyMetric(t, h.srv.Metrics().ClientConnections, before)
}
