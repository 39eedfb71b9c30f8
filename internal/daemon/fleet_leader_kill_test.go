package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/haproxytest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// TestFleetLeaderProcessKilledMidSecondFailover: three sluice processes
// with auto_promote on one etcd, a primary and two standbys, a writer
// through HAProxy. The primary is killed: one promotion (epoch 2). The
// other standby follows the new primary, which is killed in turn; the
// fleet's leader of that second failover writes its intent (epoch 3)
// and is killed with SIGKILL before it promotes (the process kills
// itself at that point: daemon.CrashAfterIntentEnv, so the moment does
// not depend on timing). Another instance finishes the failover on the
// server the intent names: one promotion per failover (two pg_promote
// calls in all, the last server on timeline 3), the epochs 1, 2, 3, both
// surviving instances route writes to the new primary, and no
// acknowledged write is lost or duplicated.
func TestFleetLeaderProcessKilledMidSecondFailover(t *testing.T) {
	began := time.Now()
	etcd := etcdtest.Start(t)
	haproxytest.Find(t)
	bin := buildSluice(t)
	set := pgtest.ReplicaSet(t, 2)
	ctx := context.Background()
	require.NoError(t, set.Primary.ExecDB(ctx, pgtest.AppDB, "CREATE TABLE ha_writes (n int); GRANT ALL ON ha_writes TO "+pgtest.AppUser))
	// Synchronous on the primary and, once promoted, on each standby: an
	// acknowledged commit is on a standby, and the one promoted is the
	// one with the most WAL.
	for _, c := range set.All() {
		require.NoError(t, c.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = '*'"))
		require.NoError(t, c.Exec(ctx, "ALTER SYSTEM SET synchronous_commit = 'on'")) // pgserver turns it off
		require.NoError(t, c.Exec(ctx, "SELECT pg_reload_conf()"))
	}
	waitSynchronous(t, set.Primary)

	ports := []int{set.Primary.Port, set.Standbys[0].Port, set.Standbys[1].Port}
	env := []string{fmt.Sprintf("%s=3", daemon.CrashAfterIntentEnv)}
	var procs []*sluiceProcess
	for _, id := range []string{"k1", "k2", "k3"} {
		procs = append(procs, startSluiceProcessWith(t, bin, id, env, func(listen, admin string) string {
			return haConfig(listen, admin, etcd.Endpoint(), id, ports...)
		}))
	}
	for _, p := range procs {
		eventually(t, p.id+" to arm its crash hook", func() bool { return strings.Contains(p.logs.String(), "TEST HOOK ARMED") })
	}
	name := func(c *pgserver.Cluster) string { return fmt.Sprintf("127.0.0.1:%d", c.Port) }
	eventually(t, "epoch 1 naming the primary", func() bool {
		e, p, done, _, _ := readDecision(t, etcd.Endpoint())
		return e == 1 && done && p == name(set.Primary)
	})
	lb := haproxytest.Start(t, procs[0].listen, procs[1].listen, procs[2].listen)
	wctx, stop := context.WithCancel(ctx)
	w := &fleetWriter{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(wctx, lb.Addr()) }()
	defer func() { stop(); wg.Wait() }()
	eventually(t, "50 writes", func() bool { return w.count() >= 50 })
	setUp := time.Since(began)

	// The first failover.
	require.NoError(t, set.Primary.Kill(ctx))
	var first, second *pgserver.Cluster
	eventually(t, "epoch 2 done naming a standby", func() bool {
		e, p, done, _, _ := readDecision(t, etcd.Endpoint())
		for i, s := range set.Standbys {
			if e == 2 && done && p == name(s) {
				first, second = s, set.Standbys[1-i]
				return true
			}
		}
		return false
	})
	for _, p := range procs {
		eventually(t, p.id+" to route writes to the new primary", func() bool { return writesGoToDSN(p.dsn(), first.Port) })
	}
	require.Equal(t, 1, processPromotions(procs), "one pg_promote call for the first failover")
	require.NoError(t, second.Follow(ctx, first))
	waitSynchronous(t, first)
	n := w.count()
	eventually(t, "writes to resume on the new primary", func() bool { return w.count() >= n+50 })
	// Once promoted, the last server has no standby left to wait for.
	require.NoError(t, second.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = ''"))
	require.NoError(t, second.Exec(ctx, "SELECT pg_reload_conf()"))

	// The second failover: its leader dies after writing the intent.
	require.NoError(t, first.Kill(ctx))
	var dead *sluiceProcess
	eventually(t, "the leader to kill itself after writing the intent of epoch 3", func() bool {
		for _, p := range procs {
			select {
			case <-p.done:
				dead = p
				return true
			default:
			}
		}
		return false
	})
	killedAt := time.Now()
	ws, ok := dead.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "%s ended by SIGKILL (%v)", dead.id, dead.cmd.ProcessState)
	require.Contains(t, dead.logs.String(), `"msg":"TEST HOOK: killing this process after writing the failover intent"`)
	require.Regexp(t, `"msg":"failover decision written".*"epoch":3,"primary":"`+name(second)+`","done":false`, dead.logs.String())
	// Its last decision written is that intent, and nothing was
	// promoted after it.
	last := afterLast(dead.logs.String(), `"msg":"failover decision written"`)
	require.Regexp(t, `^[^\n]*"epoch":3,"primary":"`+name(second)+`","done":false`, last)
	require.NotContains(t, last, `"msg":"promoted a standby"`, "the dead leader promoted nothing")
	require.NotContains(t, last, `"msg":"promoting a standby failed"`, "the dead leader promoted nothing")

	eventually(t, "epoch 3 done naming the last standby", func() bool {
		e, p, done, _, _ := readDecision(t, etcd.Endpoint())
		return e == 3 && done && p == name(second)
	})
	finished := time.Since(killedAt)
	_, _, _, leader, tli := readDecision(t, etcd.Endpoint())
	require.NotEqual(t, dead.id, leader, "another instance finished the failover")
	require.EqualValues(t, 3, tli, "the last primary's timeline: one promotion per failover")
	got, err := second.Timeline(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, got)
	require.Equal(t, 2, processPromotions(procs), "one pg_promote call per failover")
	for _, p := range procs {
		if p == dead {
			continue
		}
		eventually(t, p.id+" to route writes to the last primary", func() bool { return writesGoToDSN(p.dsn(), second.Port) })
		f := &fleetInstance{admin: "http://" + p.admin}
		require.EqualValues(t, 3, metricSum(t, f, `sluice_cluster_fencing_epoch{database="`+pgtest.AppDB+`"}`))
	}
	n = w.count()
	eventually(t, "writes to resume on the last primary", func() bool { return w.count() >= n+50 })
	stop()
	wg.Wait()
	require.Equal(t, 2, processPromotions(procs), "one pg_promote call per failover")
	checkWritesOn(t, second, w)
	t.Logf("%s wrote the intent of epoch 3 and was killed; %s finished the failover %s later (set-up %s, whole test %s)",
		dead.id, leader, finished.Round(time.Millisecond), setUp.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// waitSynchronous waits until c has a synchronous standby.
func waitSynchronous(t *testing.T, c *pgserver.Cluster) {
	t.Helper()
	eventually(t, fmt.Sprintf("a synchronous standby of the server on port %d", c.Port), func() bool {
		rows, err := c.Query(context.Background(), "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
		return err == nil && rows[0][0] == "1"
	})
}

// processPromotions counts the pg_promote calls of every process (each
// logs one line per call, successful or not).
func processPromotions(procs []*sluiceProcess) int {
	n := 0
	for _, p := range procs {
		l := p.logs.String()
		n += strings.Count(l, `"msg":"promoted a standby"`) + strings.Count(l, `"msg":"promoting a standby failed"`)
	}
	return n
}

// afterLast is what s holds after the last occurrence of sep ("" when
// none).
func afterLast(s, sep string) string {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return ""
	}
	return s[i+len(sep):]
}

func (p *sluiceProcess) dsn() string {
	return fmt.Sprintf("host=127.0.0.1 port=%s user=%s password=%s dbname=%s sslmode=disable connect_timeout=10",
		portOf(p.listen), pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
}
