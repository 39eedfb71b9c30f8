package hatest

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// failover runs the acceptance scenario: a writer and 200 idle clients
// through sluice, the primary killed, promote run (it promotes the standby
// or waits for sluice to, and returns the moment of the promotion, which
// promotion names), writes resume; then the old primary is restarted and
// must never be written to.
func failover(t *testing.T, failoverYAML, promotion string, promote func(ctx context.Context, set *pgtest.Set, srv *proxy.Server) time.Time) {
	set := pgtest.ReplicaSet(t, 1)
	ctx := context.Background()
	// No key on n: a statement sluice replayed would then be a second row,
	// found below, rather than a unique violation the writer counts as one
	// more failure.
	require.NoError(t, set.Primary.ExecDB(ctx, pgtest.AppDB, "CREATE TABLE ha_writes (n int); GRANT ALL ON ha_writes TO "+pgtest.AppUser))
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
	srv, port, _ := sluiceFor(t, set, failoverYAML)
	oldHost, newHost := hostName(set.Primary.Port), hostName(set.Standbys[0].Port)
	waitFor(t, "sluice to see the primary", func() bool { return hostViews(t, srv, pgtest.AppDB)[oldHost].role == "primary" })
	failoversBefore := dbMetric(t, srv, "sluice_failovers_total", pgtest.AppDB)

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
	go func() { defer wg.Done(); w.run(wctx, port) }()
	defer func() { stop(); wg.Wait() }() // also when a check fails
	for w.count() < 50 {
		time.Sleep(10 * time.Millisecond)
	}

	killedAt := time.Now()
	require.NoError(t, set.Primary.Kill(ctx))
	// Every process of the old primary is gone now: a transaction the
	// writer starts from here on can only wait for the new primary.
	sentBeforeDead := w.lastSent()
	deadAt := time.Now()
	promotedAt := promote(ctx, set, srv)
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
	// Acceptance point 2 (writes resume within 2 probe intervals of the
	// promotion) as a number to read, not a bound to assert. No write can
	// be acknowledged between the kill and the promotion.
	if first, ok := w.firstAckAfter(deadAt); ok {
		t.Logf("first acknowledged write %s after the promotion (%s; probe interval 500ms)",
			first.Sub(promotedAt).Round(time.Millisecond), promotion)
	}
	checkFailoverMetrics(t, srv, oldHost, newHost, failoversBefore)

	checkOldPrimaryFenced(t, set, srv, &w, sentBeforeDead)
	stop()
	wg.Wait()

	// Every acknowledged insert is on the new primary, none twice.
	newPrimary := set.Standbys[0]
	rows, err := newPrimary.QueryDB(ctx, pgtest.AppDB, "SELECT n, count(*) FROM ha_writes GROUP BY n HAVING count(*) > 1")
	require.NoError(t, err)
	require.Empty(t, rows, "numbers written more than once (n, count): a statement was replayed")
	rows, err = newPrimary.QueryDB(ctx, pgtest.AppDB, "SELECT n FROM ha_writes")
	require.NoError(t, err)
	have := map[int]bool{}
	for _, r := range rows {
		v, _ := strconv.Atoi(r[0])
		have[v] = true
	}
	w.mu.Lock()
	for _, v := range w.acked {
		require.True(t, have[v], "acknowledged insert %d is missing", v)
	}
	t.Logf("%d inserts acknowledged, %d failed (not retried): %v; all acknowledged ones present", len(w.acked), len(w.failures), w.failures)
	// Only the insert in flight when the primary died fails (and perhaps a
	// next one, sent before every backend of the old primary had exited).
	// Its error is either the dying backend's own FATAL, relayed as it came
	// (57P01 "terminating connection due to unexpected postmaster exit"),
	// or, when the server just closed, the 08006 sluice sends for a
	// transaction whose server was lost (tx_detach.go, serverLost). Every
	// insert started once the old primary was gone succeeded: new
	// transactions waited through the outage.
	require.LessOrEqual(t, len(w.failures), 2, "more than the in-flight inserts failed: %v", w.failures)
	for _, f := range w.failures {
		require.False(t, f.connect, "a client could not connect to sluice during the failover: %v", f)
		require.Contains(t, []string{"08006", "57P01"}, f.code, "%v", f)
		require.LessOrEqual(t, f.n, sentBeforeDead, "an insert started after the old primary was gone failed instead of waiting: %v", f)
	}
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

// checkOldPrimaryFenced restarts the killed primary, which comes back
// writable on its old timeline, and checks that none of the writer's
// inserts reaches it while sluice knows it is back. Its data as of the kill
// holds no number above sentBeforeDead (all its processes were gone by
// then) and every number sent later is larger, so any such row is a write
// sluice routed there; its row count must not move either.
func checkOldPrimaryFenced(t *testing.T, set *pgtest.Set, srv *proxy.Server, w *writer, sentBeforeDead int) {
	t.Helper()
	ctx := context.Background()
	old := set.Primary
	require.NoError(t, old.Restart(ctx))
	// Without its synchronous standby a commit there would wait, unseen by
	// other sessions, for good: let one complete so it shows up below.
	require.NoError(t, old.Exec(ctx, "ALTER SYSTEM RESET synchronous_standby_names"))
	require.NoError(t, old.Exec(ctx, "SELECT pg_reload_conf()"))
	oldHost := hostName(old.Port)
	waitFor(t, "sluice to see the old primary back, fenced", func() bool {
		h := hostViews(t, srv, pgtest.AppDB)[oldHost]
		return h.up && h.role == "fenced"
	})
	rows := func() (count, largest int) {
		r, err := old.QueryDB(ctx, pgtest.AppDB, "SELECT count(*), coalesce(max(n), 0) FROM ha_writes")
		require.NoError(t, err)
		count, _ = strconv.Atoi(r[0][0])
		largest, _ = strconv.Atoi(r[0][1])
		return count, largest
	}
	count, largest := rows()
	require.LessOrEqual(t, largest, sentBeforeDead, "a write sent after the kill reached the old primary")
	n := w.count()
	waitFor(t, "100 more writes with the old primary back", func() bool { return w.count() >= n+100 })
	count2, largest2 := rows()
	require.Equal(t, count, count2, "rows were added on the old primary while the writer went on")
	require.LessOrEqual(t, largest2, sentBeforeDead, "a write sent after the kill reached the old primary")
	t.Logf("old primary back and fenced: %d rows, none above %d (the last number sent before it died) across %d more writes",
		count2, sentBeforeDead, w.count()-n)
}

// checkFailoverMetrics: once writes have resumed, sluice's metrics show
// the failover: one more in sluice_failovers_total, time without a primary
// counted (how much is only printed), a primary again, and the roles by
// host. The time counter is added by a hook just after the monitor's
// change, hence the wait.
func checkFailoverMetrics(t *testing.T, srv *proxy.Server, oldHost, newHost string, failoversBefore float64) {
	t.Helper()
	db := pgtest.AppDB
	waitFor(t, "sluice_no_primary_seconds_total", func() bool { return dbMetric(t, srv, "sluice_no_primary_seconds_total", db) > 0 })
	require.GreaterOrEqual(t, dbMetric(t, srv, "sluice_failovers_total", db), failoversBefore+1, "sluice_failovers_total")
	require.Zero(t, dbMetric(t, srv, "sluice_no_primary_current_seconds", db), "sluice_no_primary_current_seconds with a primary again")
	hs := hostViews(t, srv, db)
	require.Equal(t, "primary", hs[newHost].role, "sluice_server_role of the promoted standby: %v", hs)
	require.True(t, hs[newHost].up, "sluice_server_up of the promoted standby")
	require.NotEqual(t, "primary", hs[oldHost].role, "sluice_server_role of the killed primary: %v", hs)
	require.False(t, hs[oldHost].up, "sluice_server_up of the killed primary")
	t.Logf("metrics: sluice_failovers_total %v, sluice_no_primary_seconds_total %.3f",
		dbMetric(t, srv, "sluice_failovers_total", db), dbMetric(t, srv, "sluice_no_primary_seconds_total", db))
}

func TestFailoverWithOutsidePromotion(t *testing.T) {
	failover(t, "", "pg_ctl promote returned", func(ctx context.Context, set *pgtest.Set, _ *proxy.Server) time.Time {
		time.Sleep(time.Second) // the monitor sees the primary gone
		require.NoError(t, set.Standbys[0].Promote(ctx))
		return time.Now()
	})
}

func TestFailoverWithAutoPromote(t *testing.T) {
	failover(t, ", auto_promote: true, promote_after: 2s", "sluice's metrics showed the new primary",
		func(ctx context.Context, set *pgtest.Set, srv *proxy.Server) time.Time {
			standby := hostName(set.Standbys[0].Port)
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if hostViews(t, srv, pgtest.AppDB)[standby].role == "primary" {
					return time.Now()
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Fatal("sluice did not promote the standby")
			return time.Time{}
		})
}
