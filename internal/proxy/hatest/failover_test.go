package hatest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// sluiceFor starts sluice in transaction mode in front of set.
func sluiceFor(t *testing.T, set *pgtest.Set, failover string) (*proxy.Server, int, *syncbuf.Buffer) {
	return sluiceMode(t, set, failover, "transaction")
}

// sluiceMode starts sluice in front of set in the given pool mode.
func sluiceMode(t *testing.T, set *pgtest.Set, failover, mode string) (*proxy.Server, int, *syncbuf.Buffer) {
	t.Helper()
	text := fmt.Sprintf(`listen: {address: "127.0.0.1:0"}
admin: {address: ""}
log: {level: info}
shutdown_timeout: 5s
users:
  - {name: %s, password: %s}
  - {name: %s, password: %s}
databases:
  %s:
    hosts: ["127.0.0.1:%d", "127.0.0.1:%d"]
    pool_mode: %s
    health_check_interval: 500ms
    pool: {max_size: 10, borrow_timeout: 60s}
    backend: {dial_timeout: 2s}
    failover: {user: %s%s}
`, pgtest.AppUser, pgtest.AppPassword, pgtest.MonitorUser, pgtest.MonitorPassword, pgtest.AppDB,
		set.Primary.Port, set.Standbys[0].Port, mode, pgtest.MonitorUser, failover)
	srv, logs := startText(t, text)
	return srv, srv.Addr().(*net.TCPAddr).Port, logs
}

// startText starts sluice from a config text, shut down (and its log
// shown if the test failed) at the end of the test.
func startText(t *testing.T, text string) (*proxy.Server, *syncbuf.Buffer) {
	t.Helper()
	cfg, err := config.Parse([]byte(text), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	srv, err := proxy.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
	})
	return srv, logs
}

func dsn(port int) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=10",
		port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
}

// writer inserts numbered rows through sluice until stopped. A number is
// acknowledged only when its INSERT returned success; a failed INSERT
// is never retried (it may have committed) and the next number is used.
type writer struct {
	mu         sync.Mutex
	acked      []int
	lastAck    time.Time
	failures   int
	longestGap time.Duration
}

func (w *writer) run(ctx context.Context, t *testing.T, port int) {
	var c *pgconn.PgConn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for n := 1; ctx.Err() == nil; n++ {
		if c == nil || c.IsClosed() {
			var err error
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err = pgconn.Connect(cctx, dsn(port))
			cancel()
			if err != nil {
				w.fail()
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		_, err := c.Exec(ctx, "INSERT INTO ha_writes VALUES ("+strconv.Itoa(n)+")").ReadAll()
		if err != nil {
			w.fail()
			continue
		}
		w.mu.Lock()
		now := time.Now()
		if !w.lastAck.IsZero() && now.Sub(w.lastAck) > w.longestGap {
			w.longestGap = now.Sub(w.lastAck)
		}
		w.acked = append(w.acked, n)
		w.lastAck = now
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *writer) fail() {
	w.mu.Lock()
	w.failures++
	w.mu.Unlock()
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// failover runs the acceptance scenario: a writer and 200 idle clients
// through sluice, the primary killed, promote (nil: sluice promotes by
// itself), writes resume; then the old primary is restarted and must
// never be written to.
func failover(t *testing.T, failoverYAML string, promote func(ctx context.Context, set *pgtest.Set) time.Time) {
	set := pgtest.ReplicaSet(t, 1)
	ctx := context.Background()
	require.NoError(t, set.Primary.ExecDB(ctx, pgtest.AppDB, "CREATE TABLE ha_writes (n int PRIMARY KEY); GRANT ALL ON ha_writes TO "+pgtest.AppUser))
	// Synchronous replication: a commit is acknowledged only once the
	// standby has it, so a failover can lose no acknowledged write (with
	// asynchronous replication, commits inside the replication lag are
	// lost with the primary, whatever the proxy does).
	require.NoError(t, set.Primary.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = '*'"))
	require.NoError(t, set.Primary.Exec(ctx, "ALTER SYSTEM SET synchronous_commit = 'on'"))
	require.NoError(t, set.Primary.Exec(ctx, "SELECT pg_reload_conf()"))
	for deadline := time.Now().Add(30 * time.Second); ; {
		rows, err := set.Primary.Query(ctx, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
		require.NoError(t, err)
		if rows[0][0] == "1" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the standby never became synchronous")
		time.Sleep(50 * time.Millisecond)
	}
	_, port, _ := sluiceFor(t, set, failoverYAML)

	idle := make([]*pgconn.PgConn, 200)
	for i := range idle {
		c, err := pgconn.Connect(ctx, dsn(port))
		require.NoError(t, err)
		idle[i] = c
		defer c.Close(ctx)
	}
	wctx, stop := context.WithCancel(ctx)
	var w writer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(wctx, t, port) }()
	for w.count() < 50 {
		time.Sleep(10 * time.Millisecond)
	}

	killedAt := time.Now()
	require.NoError(t, set.Primary.Kill(ctx))
	promotedAt := promote(ctx, set)
	before := w.count()
	deadline := time.Now().Add(60 * time.Second)
	for w.count() < before+50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.GreaterOrEqual(t, w.count(), before+50, "writes did not resume")
	w.mu.Lock()
	outage := w.longestGap
	w.mu.Unlock()
	t.Logf("write outage %s (primary killed %s, promoted after %s)", outage.Round(time.Millisecond),
		killedAt.Format("15:04:05.000"), promotedAt.Sub(killedAt).Round(time.Millisecond))

	// The old primary comes back: it must never be written to.
	require.NoError(t, set.Primary.Restart(ctx))
	rows, err := set.Primary.QueryDB(ctx, pgtest.AppDB, "SELECT coalesce(max(n), 0) FROM ha_writes")
	require.NoError(t, err)
	maxOld, _ := strconv.Atoi(rows[0][0])
	n := w.count()
	for w.count() < n+100 && time.Now().Before(deadline.Add(30*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wg.Wait()
	rows, err = set.Primary.QueryDB(ctx, pgtest.AppDB, "SELECT coalesce(max(n), 0) FROM ha_writes")
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(maxOld), rows[0][0], "a write reached the old primary after the failover")

	// Every acknowledged insert is on the new primary, none twice.
	newPrimary := set.Standbys[0]
	rows, err = newPrimary.QueryDB(ctx, pgtest.AppDB, "SELECT n FROM ha_writes ORDER BY n")
	require.NoError(t, err)
	have := map[int]bool{}
	for _, r := range rows {
		v, _ := strconv.Atoi(r[0])
		require.False(t, have[v], "row %d twice", v)
		have[v] = true
	}
	w.mu.Lock()
	for _, v := range w.acked {
		require.True(t, have[v], "acknowledged insert %d is missing", v)
	}
	t.Logf("%d inserts acknowledged, %d failed (not retried), all acknowledged ones present", len(w.acked), w.failures)
	w.mu.Unlock()

	// The 200 idle clients are still connected and can query.
	var bad atomic.Int64
	for _, c := range idle {
		if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			bad.Add(1)
		}
	}
	require.Zero(t, bad.Load(), "idle clients lost their connection")
}

func TestFailoverWithOutsidePromotion(t *testing.T) {
	failover(t, "", func(ctx context.Context, set *pgtest.Set) time.Time {
		time.Sleep(time.Second) // the monitor sees the primary gone
		require.NoError(t, set.Standbys[0].Promote(ctx))
		return time.Now()
	})
}

func TestFailoverWithAutoPromote(t *testing.T) {
	failover(t, ", auto_promote: true, promote_after: 2s", func(ctx context.Context, set *pgtest.Set) time.Time {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if rec, err := set.Standbys[0].InRecovery(ctx); err == nil && !rec {
				return time.Now()
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("sluice did not promote the standby")
		return time.Time{}
	})
}
