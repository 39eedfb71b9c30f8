package daemon_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
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
	cfg, err := config.Load(path)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	d, err := daemon.Start(cfg, path, logs)
	require.NoError(t, err)
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

// pgbenchAt runs pgbench -S through one instance and returns how many
// transactions it processed.
func pgbenchAt(t *testing.T, f *fleetInstance, clients, perClient int) string {
	port := f.d.Proxy.Addr().(*net.TCPAddr).Port
	cmd := exec.Command("pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", pgtest.AppUser, "-n", "-S",
		"-c", strconv.Itoa(clients), "-j", "2", "-t", strconv.Itoa(perClient), pgtest.AppDB)
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+pgtest.AppPassword)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("pgbench through %s: %v\n%s", f.id, err, out)
	}
	return string(out)
}

func shareOf(f *fleetInstance) int { return f.d.Budget.Shares()[pgtest.AppDB] }

// TestFleetBudgetNeverExceeded: max_db_connections 30 over three
// in-process instances in transaction mode, 40 pgbench clients on each
// (the issue asks 300 per instance; 2 cores cannot log in 900 SCRAM
// clients in a reasonable time, and 40 per instance already keeps every
// share saturated: 120 clients for 30 connections). The shares settle on
// 10 each; pg_stat_activity, sampled throughout, never shows more than
// 30 of the fleet's connections. One instance leaves: the two others
// take its share (15 each), and the server still never sees more than 30.
func TestFleetBudgetNeverExceeded(t *testing.T) {
	etcd := etcdtest.Start(t)
	fleet := []*fleetInstance{
		startBudgetInstance(t, etcd.Endpoint(), "b1", 30),
		startBudgetInstance(t, etcd.Endpoint(), "b2", 30),
		startBudgetInstance(t, etcd.Endpoint(), "b3", 30),
	}
	eventually(t, "the shares to settle on 10 each", func() bool {
		return shareOf(fleet[0]) == 10 && shareOf(fleet[1]) == 10 && shareOf(fleet[2]) == 10
	})

	s := startSampler(t)
	var wg sync.WaitGroup
	for _, f := range fleet {
		wg.Add(1)
		go func() { defer wg.Done(); pgbenchAt(t, f, 40, 150) }()
	}
	wg.Wait()
	peak, samples := s.end()
	t.Logf("three instances: peak %d server connections over %d samples", peak, samples)
	require.Positive(t, peak)
	require.LessOrEqual(t, peak, int64(30), "the fleet held more than max_db_connections")

	// b3 leaves while b1 and b2 run pgbench: they grow into its share
	// only once it gave it back.
	s = startSampler(t)
	for _, f := range fleet[:2] {
		wg.Add(1)
		go func() { defer wg.Done(); pgbenchAt(t, f, 40, 300) }()
	}
	fleet[2].stop()
	eventually(t, "b1 and b2 to take b3's share", func() bool {
		return shareOf(fleet[0]) == 15 && shareOf(fleet[1]) == 15
	})
	wg.Wait()
	peak, samples = s.end()
	t.Logf("two instances: peak %d server connections over %d samples", peak, samples)
	require.LessOrEqual(t, peak, int64(30), "the fleet held more than max_db_connections")
	snap := fleet[0].d.Proxy.Snapshot()
	require.Equal(t, 15, snap.Databases[0].MaxConns, "SHOW DATABASES' max_connections is the share")
}
