package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// budgetConfig is a fleet instance's configuration with AppDB in
// transaction mode under a fleet-wide max_db_connections.
func budgetConfig(t *testing.T, etcd, id string, budget int) string {
	return budgetConfigOn(t, etcd, id, budget, "127.0.0.1:0", `""`)
}

// budgetConfigOn is budgetConfig listening on listen, with the admin
// endpoint on admin.
func budgetConfigOn(t *testing.T, etcd, id string, budget int, listen, admin string) string {
	return fmt.Sprintf(`listen:
  address: %s
admin:
  address: %s
log:
  format: json
  level: warn
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool_mode: transaction
    pool:
      max_size: 30
      max_db_connections: %d
cluster:
  etcd:
    endpoints: ["%s"]
    dial_timeout: 2s
  instance_id: %s
  prefix: /budget-test/
  lease_ttl: 2s
`, listen, admin, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, pgtest.Cluster(t).Port, budget, etcd, id)
}

func startBudgetInstance(t *testing.T, etcd, id string, budget int) *fleetInstance {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	require.NoError(t, os.WriteFile(path, []byte(budgetConfig(t, etcd, id, budget)), 0o600))
	d, logs := startDaemonAt(t, path)
	inst := &fleetInstance{id: id, d: d, logs: logs, etcd: etcd, path: path}
	t.Cleanup(inst.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's log:\n%s", id, logs.String())
		}
	})
	return inst
}

// appConns counts the server connections of AppUser to AppDB (the
// sampler's own are the superuser's).
func appConns(t *testing.T) int {
	rows, err := pgtest.Cluster(t).Query(context.Background(), fmt.Sprintf(
		"SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND usename = '%s'", pgtest.AppDB, pgtest.AppUser))
	if err != nil {
		t.Errorf("sampling pg_stat_activity: %v", err)
		return 0
	}
	n, _ := strconv.Atoi(rows[0][0])
	return n
}

// sampler samples appConns until stopped, keeping the peak.
type sampler struct {
	peak, samples atomic.Int64
	stop          chan struct{}
	done          chan struct{}
}

func startSampler(t *testing.T) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			n := int64(appConns(t))
			s.samples.Add(1)
			if n > s.peak.Load() {
				s.peak.Store(n)
			}
		}
	}()
	return s
}

func (s *sampler) end() (peak, samples int64) {
	close(s.stop)
	<-s.done
	return s.peak.Load(), s.samples.Load()
}

func shareOf(f *fleetInstance) int { return f.d.Budget.Shares()[pgtest.AppDB] }

// budgetClientsEnv sets the pgbench clients per instance of
// TestFleetBudgetNeverExceeded: by default the 300 (900 in all,
// about 35 s on two loaded cores); a developer may run fewer, or more.
const budgetClientsEnv = "SLUICE_FLEET_BUDGET_CLIENTS"

func budgetClients(t *testing.T) int {
	v := os.Getenv(budgetClientsEnv)
	if v == "" {
		return 300
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, budgetClientsEnv)
	require.Positive(t, n, budgetClientsEnv)
	return n
}

// budgetScript is a transaction that holds its server connection for a
// few milliseconds, so that every instance's clients keep all of its
// share busy (pgbench -S on two cores needs fewer than its 10
// connections, and would not show whether an instance may use more).
const budgetScript = "BEGIN;\nSELECT pg_sleep(0.005);\nEND;\n"

// pgbenchThrough runs pgbench with budgetScript through the sluice
// listening on listen (each client running perClient transactions) and
// returns its output.
func pgbenchThrough(t *testing.T, listen string, clients, perClient int) string {
	script := filepath.Join(t.TempDir(), "budget.sql")
	require.NoError(t, os.WriteFile(script, []byte(budgetScript), 0o600))
	cmd := exec.Command("pgbench", "-h", "127.0.0.1", "-p", portOf(listen), "-U", pgtest.AppUser, "-n", "-f", script,
		"-c", strconv.Itoa(clients), "-j", "2", "-t", strconv.Itoa(perClient), pgtest.AppDB)
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+pgtest.AppPassword)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("pgbench through %s: %v\n%s", listen, err, out)
	}
	return string(out)
}

// processShare reads the instance's share of AppDB's budget from its
// metrics.
func processShare(t *testing.T, p *sluiceProcess) float64 {
	return metricSum(t, &fleetInstance{admin: "http://" + p.admin}, `sluice_cluster_budget_share{database="`+pgtest.AppDB+`"}`)
}

// TestFleetBudgetNeverExceeded: max_db_connections 30 over three sluice
// processes in transaction mode, pgbench with 300 clients on each
// (SLUICE_FLEET_BUDGET_CLIENTS to change it): the shares settle on 10
// each, and pg_stat_activity, sampled throughout, never shows more than
// 30 of the fleet's connections. One instance is killed with SIGKILL
// while the others run pgbench: when its lease expires the two others
// take its share (15 each), the server still never sees more than 30,
// and a run after that uses more than the two old shares (more than 20
// connections).
func TestFleetBudgetNeverExceeded(t *testing.T) {
	began := time.Now()
	etcd := etcdtest.Start(t)
	bin := buildSluice(t)
	clients := budgetClients(t)
	var fleet []*sluiceProcess
	for _, id := range []string{"b1", "b2", "b3"} {
		fleet = append(fleet, startSluiceProcess(t, bin, etcd.Endpoint(), id, 30))
	}
	for _, p := range fleet {
		eventually(t, p.id+"'s share to settle on 10", func() bool {
			code, _ := getQuiet("http://" + p.admin + "/metrics")
			return code == 200 && processShare(t, p) == 10
		})
	}

	s := startSampler(t)
	run := func(procs []*sluiceProcess, perClient int) *sync.WaitGroup {
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Add(1)
			go func() { defer wg.Done(); pgbenchThrough(t, p.listen, clients, perClient) }()
		}
		return &wg
	}
	phase := time.Now()
	run(fleet, 20).Wait()
	peak, samples := s.end()
	t.Logf("three instances, %d pgbench clients each: peak %d server connections over %d samples (%s)",
		clients, peak, samples, time.Since(phase).Round(time.Millisecond))
	require.Positive(t, peak)
	require.LessOrEqual(t, peak, int64(30), "the fleet held more than max_db_connections")

	// b3 is killed while b1 and b2 run pgbench: they grow into its share
	// only once its lease expired.
	phase = time.Now()
	s = startSampler(t)
	wg := run(fleet[:2], 40)
	require.NoError(t, fleet[2].cmd.Process.Signal(syscall.SIGKILL))
	<-fleet[2].done
	for _, p := range fleet[:2] {
		eventually(t, p.id+" to take its part of b3's share", func() bool { return processShare(t, p) == 15 })
	}
	wg.Wait()
	peak, samples = s.end()
	t.Logf("b3 killed while b1 and b2 ran pgbench: peak %d server connections over %d samples (%s)",
		peak, samples, time.Since(phase).Round(time.Millisecond))
	require.LessOrEqual(t, peak, int64(30), "the fleet held more than max_db_connections")

	// And they use it.
	phase = time.Now()
	s = startSampler(t)
	run(fleet[:2], 20).Wait()
	peak, samples = s.end()
	t.Logf("two instances, %d pgbench clients each: peak %d server connections over %d samples (%s; whole test %s)",
		clients, peak, samples, time.Since(phase).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	require.LessOrEqual(t, peak, int64(30), "the fleet held more than max_db_connections")
	require.Greater(t, peak, int64(20), "the two instances did not use b3's share")
	code, body := get(t, "http://"+fleet[0].admin+"/api/databases")
	require.Equal(t, 200, code)
	var dbs []console.Database
	require.NoError(t, json.Unmarshal([]byte(body), &dbs), body)
	require.Len(t, dbs, 1)
	require.Equal(t, 15, dbs[0].MaxConns, "SHOW DATABASES' max_connections is the share")
}

// TestFleetBudgetReload: max_db_connections changed in every instance's
// file and reloaded (no restart) is divided anew: 30 → 60 gives 20 each,
// and a pgbench run then holds more than the old 30; 60 → 15 while
// pgbench runs shrinks the shares to 5 each without failing a
// transaction (busy connections are never closed), and the next run
// never sees more than 15. Before, a fleet kept the value it started
// with until a restart.
func TestFleetBudgetReload(t *testing.T) {
	etcd := etcdtest.Start(t)
	fleet := []*fleetInstance{
		startBudgetInstance(t, etcd.Endpoint(), "r1", 30),
		startBudgetInstance(t, etcd.Endpoint(), "r2", 30),
		startBudgetInstance(t, etcd.Endpoint(), "r3", 30),
	}
	settle := func(share int) {
		for _, f := range fleet {
			eventually(t, fmt.Sprintf("%s's share to be %d", f.id, share), func() bool { return shareOf(f) == share })
		}
	}
	reloadAll := func(budget int) {
		for _, f := range fleet {
			require.NoError(t, os.WriteFile(f.path, []byte(budgetConfig(t, f.etcd, f.id, budget)), 0o600))
			require.NoError(t, f.d.Reload())
		}
	}
	run := func(clients, perClient int) *sync.WaitGroup {
		var wg sync.WaitGroup
		for _, f := range fleet {
			wg.Add(1)
			go func() { defer wg.Done(); pgbenchThrough(t, f.d.Proxy.Addr().String(), clients, perClient) }()
		}
		return &wg
	}
	settle(10)

	reloadAll(60)
	settle(20)
	s := startSampler(t)
	run(60, 20).Wait()
	peak, samples := s.end()
	t.Logf("max_db_connections 60 after a reload: peak %d server connections over %d samples", peak, samples)
	require.LessOrEqual(t, peak, int64(60))
	require.Greater(t, peak, int64(30), "the raised budget was not used")

	// Lowered while pgbench holds connections: pgbench reports any
	// failed transaction (pgbenchThrough fails the test then).
	wg := run(60, 40)
	reloadAll(15)
	settle(5)
	wg.Wait()
	s = startSampler(t)
	run(60, 20).Wait()
	peak, samples = s.end()
	t.Logf("max_db_connections 15 after a reload under load: peak %d server connections over %d samples", peak, samples)
	require.LessOrEqual(t, peak, int64(15), "the fleet held more than the lowered max_db_connections")
	for _, f := range fleet {
		require.Equal(t, 5, f.d.Proxy.Snapshot().Databases[0].MaxConns)
	}
}
