package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// pgx's WaitForNotification through sluice in transaction mode, with
// pgx's default protocol (LISTEN through its statement cache: Parse,
// Bind, Execute): the LISTEN holds no server connection, and a NOTIFY
// from another client arrives.
func TestTxListenPgxWaitForNotification(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "listen tx_pgx_ch")
	require.NoError(t, err)
	other := h.connect(ctx)
	query(t, other, "SELECT pg_notify('tx_pgx_ch', 'from pgx test')") // the pool's only connection is free
	wctx, cancel := context.WithTimeout(ctx, time.Minute)             // a guard against a hang
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	require.NoError(t, err)
	require.Equal(t, "tx_pgx_ch", n.Channel)
	require.Equal(t, "from pgx test", n.Payload)
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one), "the client goes on")
}

// psql's LISTEN through sluice in transaction mode: psql prints a
// notification after the next command it runs, as with a direct
// connection. psql reads its commands from a pipe; the test sends
// `SELECT 1;` until psql has printed the notification.
func TestTxListenPsql(t *testing.T) {
	h := start(t, txPool(1))
	cmd := exec.Command("psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", fmt.Sprint(h.port), "-U", pgtest.AppUser, "-d", pgtest.AppDB)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pgtest.AppPassword)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		cmd.Wait()
		pw.Close()
	}()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(want string) string {
		t.Helper()
		guard := time.After(time.Minute) // against a hang, not a measured limit
		for {
			select {
			case l, ok := <-lines:
				require.True(t, ok, "psql ended before printing %q", want)
				if strings.Contains(l, want) {
					return l
				}
			case <-guard:
				t.Fatalf("psql never printed %q", want)
			}
		}
	}
	fmt.Fprintln(stdin, "LISTEN tx_psql_ch;")
	expect("LISTEN")
	other := h.connect(context.Background())
	query(t, other, "SELECT pg_notify('tx_psql_ch', 'hi psql')")
	want := `Asynchronous notification "tx_psql_ch" with payload "hi psql" received from server process with PID`
	guard := time.After(time.Minute) // against a hang, not a measured limit
	for {
		fmt.Fprintln(stdin, "SELECT 1;") // psql prints notifications after a command
		select {
		case l, ok := <-lines:
			require.True(t, ok, "psql ended before printing the notification")
			if strings.Contains(l, want) {
				t.Log(l)
				return
			}
		case <-guard:
			t.Fatal("psql never printed the notification")
		}
	}
}

// listenerPID is the server process of the pool's listener connection:
// the app's connection whose last statement is the fan-out's LISTEN
// ("" while there is none).
func listenerPID(t *testing.T) string {
	t.Helper()
	rows, err := pgtest.Cluster(t).Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE usename = '`+pgtest.AppUser+`' AND state = 'idle' AND query LIKE 'LISTEN "%'`)
	require.NoError(t, err)
	if len(rows) != 1 {
		return ""
	}
	return rows[0][0]
}

// The listener's server process is terminated: sluice opens another
// listener connection and LISTENs again, and notifications sent once it
// is back arrive; the listening client noticed nothing.
func TestTxListenerComesBackAfterServerLoss(t *testing.T) {
	h := start(t, txPool(2))
	m := h.srv.Metrics()
	a := connectListening(t, h)
	query(t, a.PgConn, "LISTEN tx_loss_ch")
	old := listenerPID(t)
	require.NotEmpty(t, old)
	_, err := pgtest.Cluster(t).Query(context.Background(), "SELECT pg_terminate_backend("+old+")")
	require.NoError(t, err)
	var back string
	require.Eventually(t, func() bool { back = listenerPID(t); return back != "" && back != old },
		time.Minute, 10*time.Millisecond, "the listener connection comes back")
	eventuallyLogged(t, h, "LISTEN fan-out: listener connection lost")
	b := h.connect(context.Background())
	query(t, b, "SELECT pg_notify('tx_loss_ch', 'after the loss')")
	n := nextNotification(t, a)
	require.Equal(t, "after the loss", n.Payload)
	require.Equal(t, 1.0, metricValue(t, m.Notify.ListenerConnections.WithLabelValues(pgtest.AppDB, pgtest.AppUser)))
	require.Equal(t, []string{"1"}, query(t, a.PgConn, "SELECT 1"), "the client goes on")
}

// A client that does not read (with a small receive buffer): its queue
// holds at most max_pending_notifications, the oldest are dropped and
// counted, and when it reads again it gets, before what follows a drop,
// a notice saying how many were dropped; what it gets is in order and
// ends with the newest.
func TestTxListenQueueIsBounded(t *testing.T) {
	const sent = 1000
	h := startWith(t, txPool(2), "limits:\n  max_pending_notifications: 5\n")
	m := h.srv.Metrics()
	ctx := context.Background()
	cfg, err := pgconn.ParseConfig(h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		notices = append(notices, n.Severity+" "+n.Code+" "+n.Message)
	}
	got := make(chan *pgconn.Notification, sent)
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { got <- n }
	// A small receive buffer, set before connecting (set later, it
	// stalls TCP in retransmission backoff rather than limiting it).
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8192) })
		return serr
	}}
	cfg.DialFunc = d.DialContext
	slow, err := pgconn.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer slow.Close(ctx)
	query(t, slow, "LISTEN tx_bound_ch")

	// 1000 notifications of 7 kB: far more than the socket buffers
	// between sluice and a client that does not read can hold.
	notifier := h.connect(ctx)
	query(t, notifier, fmt.Sprintf("SELECT count(pg_notify('tx_bound_ch', i || ':' || repeat('x', 7000))) FROM generate_series(1, %d) i", sent))
	eventuallyMetric(t, m.Notify.NotificationsReceived, sent)
	dropped := metricValue(t, m.Notify.NotificationsDropped)
	require.Positive(t, dropped, "the slow client's queue overflowed")

	// The slow client reads again: what was in flight, the notice, the
	// last five.
	var seqs []int
	wctx, cancel := context.WithTimeout(ctx, time.Minute) // a guard against a hang
	defer cancel()
	for len(seqs) == 0 || seqs[len(seqs)-1] != sent {
		select {
		case n := <-got:
			var seq int
			fmt.Sscanf(n.Payload, "%d:", &seq)
			seqs = append(seqs, seq)
			continue
		default:
		}
		require.NoError(t, slow.WaitForNotification(wctx), "after %d notifications (last %v), notices %q", len(seqs), seqs[max(0, len(seqs)-3):], notices)
	}
	total := 0
	for _, n := range notices {
		var k int
		_, err := fmt.Sscanf(n, "WARNING 01000 sluice dropped %d notifications for this client: more than limits.max_pending_notifications (5) were waiting to be delivered", &k)
		require.NoError(t, err, n)
		total += k
	}
	require.Equal(t, int(dropped), total, "the notices count every notification dropped")
	require.Equal(t, sent, len(seqs)+int(dropped), "received and dropped add up")
	require.IsIncreasing(t, seqs)
	require.Equal(t, sent, seqs[len(seqs)-1], "the newest is kept")
}
