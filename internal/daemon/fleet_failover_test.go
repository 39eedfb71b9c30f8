package daemon_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/haproxytest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

const haPrefix = "/fleet-ha/"

// haFleet is a primary with a synchronous standby, etcd, and three
// sluices with auto_promote that decide failover through etcd.
type haFleet struct {
	set   *pgtest.Set
	etcd  *etcdtest.Server
	insts []*fleetInstance
}

func startHAFleet(t *testing.T) *haFleet {
	etcd := etcdtest.Start(t)
	set := pgtest.ReplicaSet(t, 1)
	ctx := context.Background()
	require.NoError(t, set.Primary.ExecDB(ctx, pgtest.AppDB, "CREATE TABLE ha_writes (n int); GRANT ALL ON ha_writes TO "+pgtest.AppUser))
	// Synchronous: an acknowledged commit is on the standby too.
	require.NoError(t, set.Primary.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = '*'"))
	require.NoError(t, set.Primary.Exec(ctx, "ALTER SYSTEM SET synchronous_commit = 'on'")) // pgserver turns it off
	require.NoError(t, set.Primary.Exec(ctx, "SELECT pg_reload_conf()"))
	eventually(t, "the standby to be synchronous", func() bool {
		rows, err := set.Primary.Query(ctx, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
		return err == nil && rows[0][0] == "1"
	})
	f := &haFleet{set: set, etcd: etcd}
	for _, id := range []string{"h1", "h2", "h3"} {
		f.insts = append(f.insts, startHAInstance(t, etcd.Endpoint(), id, set))
	}
	return f
}

func startHAInstance(t *testing.T, etcd, id string, set *pgtest.Set) *fleetInstance {
	t.Helper()
	adminPort := freePort(t)
	var ports []int
	for _, c := range set.All() {
		ports = append(ports, c.Port)
	}
	text := haConfig("127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", adminPort), etcd, id, ports...)
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	d, logs := startDaemonAt(t, path)
	inst := &fleetInstance{id: id, d: d, admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), logs: logs, etcd: etcd, path: path, adminPort: adminPort}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's log:\n%s", id, logs.String())
		}
	})
	t.Cleanup(inst.stop)
	return inst
}

// decision reads <prefix>primary/appdb from etcd.
func (f *haFleet) decision(t *testing.T) (epoch uint64, primary string, done bool, leader string, timeline uint32) {
	t.Helper()
	return readDecision(t, f.etcd.Endpoint())
}

// promotions counts the promotions every instance attempted (each logs
// one line per pg_promote call, successful or not).
func (f *haFleet) promotions() int {
	n := 0
	for _, in := range f.insts {
		n += strings.Count(in.logs.String(), `"msg":"promoted a standby"`) + strings.Count(in.logs.String(), `"msg":"promoting a standby failed"`)
	}
	return n
}

// writesGoTo reports whether a write transaction through the instance
// runs on the server listening on port.
func writesGoTo(in *fleetInstance, port int) bool {
	return writesGoToDSN(in.dsn(pgtest.AppDB), port)
}

// waitBootstrapped waits until the first leader recorded the primary in
// use (epoch 1) and every instance has read it.
func (f *haFleet) waitBootstrapped(t *testing.T) {
	eventually(t, "epoch 1 naming the primary", func() bool {
		e, p, done, _, _ := f.decision(t)
		return e == 1 && done && p == fmt.Sprintf("127.0.0.1:%d", f.set.Primary.Port)
	})
	for _, in := range f.insts {
		eventually(t, in.id+" to read epoch 1", func() bool {
			return metricSum(t, in, `sluice_cluster_fencing_epoch{database="`+pgtest.AppDB+`"}`) == 1
		})
	}
	eventually(t, "one leader", func() bool {
		n := 0.0
		for _, in := range f.insts {
			n += metricSum(t, in, `sluice_cluster_failover_leader{database="`+pgtest.AppDB+`"}`)
		}
		return n == 1
	})
}

// fleetWriter inserts numbered rows through addr, never retrying one
// whose INSERT failed (it may have committed).
type fleetWriter struct {
	mu     sync.Mutex
	acked  []int
	failed []string
}

func (w *fleetWriter) run(ctx context.Context, addr string) {
	host, port, _ := net.SplitHostPort(addr)
	dsn := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable connect_timeout=10", host, port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	var c *pgconn.PgConn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for n := 1; ctx.Err() == nil; n++ {
		if c == nil || c.IsClosed() {
			var err error
			if c, err = pgconn.Connect(ctx, dsn); err != nil {
				w.fail(ctx, n, err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		if _, err := c.Exec(ctx, "INSERT INTO ha_writes VALUES ("+strconv.Itoa(n)+")").ReadAll(); err != nil {
			w.fail(ctx, n, err)
			continue
		}
		w.mu.Lock()
		w.acked = append(w.acked, n)
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *fleetWriter) fail(ctx context.Context, n int, err error) {
	if ctx.Err() == nil {
		w.mu.Lock()
		w.failed = append(w.failed, fmt.Sprintf("%d: %v", n, err))
		w.mu.Unlock()
	}
}

func (w *fleetWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// checkNoLossNoDuplicate: every acknowledged number is on the new
// primary, none twice.
func checkNoLossNoDuplicate(t *testing.T, f *haFleet, w *fleetWriter) {
	checkWritesOn(t, f.set.Standbys[0], w)
}

// TestFleetFailoverOnePromotion: three sluices with auto_promote on one
// etcd, a writer through HAProxy, the primary killed: exactly one
// promotion (one pg_promote call, the epoch up by exactly one), no
// acknowledged write lost or duplicated, and every instance routes
// writes to the new primary. Without the fleet's election each instance
// promoted on its own.
func TestFleetFailoverOnePromotion(t *testing.T) {
	f := startHAFleet(t)
	f.waitBootstrapped(t)
	lb := haproxytest.Start(t, f.insts[0].d.Proxy.Addr().String(), f.insts[1].d.Proxy.Addr().String(), f.insts[2].d.Proxy.Addr().String())
	ctx, stop := context.WithCancel(context.Background())
	w := &fleetWriter{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(ctx, lb.Addr()) }()
	defer func() { stop(); wg.Wait() }()
	eventually(t, "50 writes", func() bool { return w.count() >= 50 })

	require.NoError(t, f.set.Primary.Kill(context.Background()))
	killedAt := time.Now()
	for _, in := range f.insts {
		eventually(t, in.id+" to route writes to the new primary", func() bool { return writesGoTo(in, f.set.Standbys[0].Port) })
	}
	t.Logf("all three instances route writes to the new primary %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	require.Equal(t, 1, f.promotions(), "exactly one pg_promote call in the fleet")
	standby := fmt.Sprintf("127.0.0.1:%d", f.set.Standbys[0].Port)
	eventually(t, "epoch 2 done naming the standby", func() bool {
		e, p, done, _, _ := f.decision(t)
		return e == 2 && done && p == standby
	})
	n := w.count()
	eventually(t, "writes to resume", func() bool { return w.count() >= n+50 })
	stop()
	wg.Wait()

	e, _, _, leader, tli := f.decision(t)
	require.EqualValues(t, 2, e, "the epoch went up by exactly one")
	require.EqualValues(t, 2, tli, "the new primary's timeline")
	require.Equal(t, 1, f.promotions(), "exactly one pg_promote call in the fleet")
	decisions := 0.0
	for _, in := range f.insts {
		decisions += metricSum(t, in, `sluice_cluster_failover_decisions_total{database="`+pgtest.AppDB+`"}`)
	}
	require.EqualValues(t, 2, decisions, "two decisions in the fleet: the first record and the promotion")
	t.Logf("promoted by %s", leader)
	checkNoLossNoDuplicate(t, f, w)

	// SHOW FAILOVER and /api/failover: every instance shows the decision
	// and the same leader; only the leader may promote.
	leaders := 0
	for _, in := range f.insts {
		eventually(t, in.id+" to see the leader", func() bool { fo := in.apiFailover(t); return len(fo) == 1 && fo[0].Leader != "" })
		fo := in.apiFailover(t)[0]
		require.Equal(t, pgtest.AppDB, fo.Database)
		require.Equal(t, standby, fo.Primary)
		require.EqualValues(t, 2, fo.Epoch)
		require.EqualValues(t, 2, fo.Timeline)
		require.True(t, fo.Done)
		require.Equal(t, leader, fo.DecidedBy)
		require.False(t, fo.DecidedAt.IsZero())
		require.True(t, fo.EtcdUp)
		require.Equal(t, fo.Leading, fo.CanPromote)
		require.Equal(t, fo.Leading, fo.Leader == in.id, "%s: leader %s, leading %v", in.id, fo.Leader, fo.Leading)
		if fo.Leading {
			leaders++
			require.Empty(t, fo.WhyNot)
		} else {
			require.Equal(t, "another instance leads failover for this database: "+fo.Leader, fo.WhyNot)
		}
		row := in.showFailover(t)
		require.Equal(t, []string{pgtest.AppDB, standby, "2", "2", "1", leader}, row[:6])
		require.Equal(t, fo.Leader, row[7])
	}
	require.Equal(t, 1, leaders, "one leader in the fleet")
}

// TestFleetLeaderDiesMidFailover: the leader writes its intent and
// stops before promoting (its election is resigned, as a crash would
// after the lease); another instance finishes the failover on the server
// the intent names, under the same epoch, with one promotion in all.
func TestFleetLeaderDiesMidFailover(t *testing.T) {
	f := startHAFleet(t)
	f.waitBootstrapped(t)
	var dead atomic.Value // the instance id that stopped after its intent
	for _, in := range f.insts {
		p := in.d.Promoter
		id := in.id
		p.SetAfterIntent(func(ctx context.Context, db string, _ uint64) {
			if dead.CompareAndSwap(nil, id) {
				p.Close() // the leader is gone: its lease is revoked, nothing more from it
			}
		})
	}
	require.NoError(t, f.set.Primary.Kill(context.Background()))
	standby := fmt.Sprintf("127.0.0.1:%d", f.set.Standbys[0].Port)
	eventually(t, "an intent", func() bool { return dead.Load() != nil })
	eventually(t, "epoch 2 done naming the standby", func() bool {
		e, p, done, _, _ := f.decision(t)
		return e == 2 && done && p == standby
	})
	_, _, _, leader, _ := f.decision(t)
	require.NotEqual(t, dead.Load(), leader, "another instance finished the failover")
	require.Equal(t, 1, f.promotions(), "exactly one pg_promote call")
	for _, in := range f.insts {
		if in.id == dead.Load() {
			continue
		}
		eventually(t, in.id+" to route writes to the new primary", func() bool { return writesGoTo(in, f.set.Standbys[0].Port) })
	}
	t.Logf("%s wrote the intent and stopped; %s finished it", dead.Load(), leader)
}

// TestFleetNoPromotionWhileEtcdDown: with etcd stopped the instances
// keep serving, and when the primary dies nothing is promoted, every
// instance says why (log, /readyz, metric); once etcd is back, the
// failover proceeds.
func TestFleetNoPromotionWhileEtcdDown(t *testing.T) {
	f := startHAFleet(t)
	f.waitBootstrapped(t)
	f.etcd.Stop()
	for _, in := range f.insts {
		eventually(t, in.id+"'s /readyz to say failover is disabled", func() bool {
			code, m := in.readyz(t)
			d, _ := m["degraded"].(string)
			return code == 200 && strings.Contains(d, "failover is disabled while etcd is unreachable")
		})
		require.EqualValues(t, 1, metricSum(t, in, `sluice_cluster_failover_blocked{database="`+pgtest.AppDB+`"}`))
		fo := in.apiFailover(t)
		require.Len(t, fo, 1)
		require.False(t, fo[0].EtcdUp)
		require.False(t, fo[0].CanPromote)
		require.Contains(t, fo[0].WhyNot, "failover is disabled while etcd is unreachable: ")
		require.EqualValues(t, 1, fo[0].Epoch, "the last decision known")
		require.Equal(t, fmt.Sprintf("127.0.0.1:%d", f.set.Primary.Port), fo[0].Primary)
		selectOne(t, in.dsn(pgtest.AppDB)) // serving goes on
	}
	require.NoError(t, f.set.Primary.Kill(context.Background()))
	// Each instance logs that it would promote, past promote_after, and
	// does not.
	for _, in := range f.insts {
		eventually(t, in.id+" to report the failover blocked", func() bool {
			return strings.Contains(in.logs.String(), `"msg":"failover blocked"`)
		})
	}
	rows, err := f.set.Standbys[0].Query(context.Background(), "SELECT pg_is_in_recovery()")
	require.NoError(t, err)
	require.Equal(t, "t", rows[0][0], "the standby was promoted while etcd was down")
	require.Zero(t, f.promotions())

	f.etcd.Start()
	standby := fmt.Sprintf("127.0.0.1:%d", f.set.Standbys[0].Port)
	eventually(t, "epoch 2 done naming the standby", func() bool {
		e, p, done, _, _ := f.decision(t)
		return e == 2 && done && p == standby
	})
	require.Equal(t, 1, f.promotions())
	for _, in := range f.insts {
		eventually(t, in.id+" to route writes to the new primary", func() bool { return writesGoTo(in, f.set.Standbys[0].Port) })
	}
}
