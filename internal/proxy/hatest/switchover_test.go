package hatest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// makeSynchronous makes the set's first standby synchronous: a commit is
// acknowledged only once the standby has it. The setting is made on the
// primary only (ALTER SYSTEM after the standby was cloned), so the
// standby, once promoted, does not wait for a standby of its own.
func makeSynchronous(t *testing.T, set *pgtest.Set) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, set.Primary.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = '*'"))
	require.NoError(t, set.Primary.Exec(ctx, "ALTER SYSTEM SET synchronous_commit = 'on'"))
	require.NoError(t, set.Primary.Exec(ctx, "SELECT pg_reload_conf()"))
	waitFor(t, "the standby to become synchronous", func() bool {
		rows, err := set.Primary.Query(ctx, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
		require.NoError(t, err)
		return rows[0][0] == "1"
	})
}

// SWITCHOVER under a writer, with a synchronous standby: no write fails
// (the writer only waits), every acknowledged write is on the new
// primary, none twice, the old primary is fenced and gets no more writes.
func TestSwitchoverUnderWriter(t *testing.T) {
	set := pgtest.ReplicaSet(t, 1)
	ctx := context.Background()
	require.NoError(t, set.Primary.ExecDB(ctx, pgtest.AppDB, "CREATE TABLE ha_writes (n int); GRANT ALL ON ha_writes TO "+pgtest.AppUser))
	makeSynchronous(t, set)
	srv, port, _ := sluiceFor(t, set, "")
	oldHost, newHost := hostName(set.Primary.Port), hostName(set.Standbys[0].Port)
	waitFor(t, "sluice to see the primary and the standby", func() bool {
		hs := hostViews(t, srv, pgtest.AppDB)
		return hs[oldHost].role == "primary" && hs[newHost].role == "standby"
	})

	// Refusals change nothing.
	require.ErrorContains(t, srv.Switchover(ctx, pgtest.AppDB, "127.0.0.1:1"), "no host 127.0.0.1:1")
	require.ErrorContains(t, srv.Switchover(ctx, pgtest.AppDB, oldHost), "is not a reachable standby")
	require.EqualError(t, srv.Switchover(ctx, "", ""), "a database is required")

	wctx, stop := context.WithCancel(ctx)
	var w writer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(wctx, port) }()
	defer func() { stop(); wg.Wait() }()
	waitFor(t, "50 writes", func() bool { return w.count() >= 50 })

	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	began := time.Now()
	require.NoError(t, srv.Switchover(sctx, pgtest.AppDB, ""))
	took := time.Since(began)
	cancel()
	before := w.count()
	waitFor(t, "50 writes after the switchover", func() bool { return w.count() >= before+50 })
	hs := hostViews(t, srv, pgtest.AppDB)
	require.Equal(t, "primary", hs[newHost].role, "%v", hs)
	waitFor(t, "the old primary to be fenced", func() bool { return hostViews(t, srv, pgtest.AppDB)[oldHost].role == "fenced" })

	// The old primary gets no write any more.
	oldRows := func() string {
		r, err := set.Primary.QueryDB(ctx, pgtest.AppDB, "SELECT count(*) FROM ha_writes")
		require.NoError(t, err)
		return r[0][0]
	}
	n, count := w.count(), oldRows()
	waitFor(t, "100 more writes", func() bool { return w.count() >= n+100 })
	require.Equal(t, count, oldRows(), "rows were added on the old primary after the switchover")
	stop()
	wg.Wait()

	rows, err := set.Standbys[0].QueryDB(ctx, pgtest.AppDB, "SELECT n, count(*) FROM ha_writes GROUP BY n HAVING count(*) > 1")
	require.NoError(t, err)
	require.Empty(t, rows, "numbers written more than once")
	rows, err = set.Standbys[0].QueryDB(ctx, pgtest.AppDB, "SELECT n FROM ha_writes")
	require.NoError(t, err)
	have := map[int]bool{}
	for _, r := range rows {
		v, _ := strconv.Atoi(r[0])
		have[v] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Empty(t, w.failures, "writes failed during the switchover")
	for _, v := range w.acked {
		require.True(t, have[v], "acknowledged insert %d is missing on the new primary", v)
	}
	t.Logf("switchover took %s; %d inserts acknowledged, 0 failed, all on the new primary; longest gap between acknowledged writes %s",
		took.Round(time.Millisecond), len(w.acked), w.longestGap.Round(time.Millisecond))
}
