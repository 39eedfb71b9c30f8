package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/haproxytest"
	"github.com/sluice-proxy/sluice/internal/testutil/metricstest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/promtooltest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// fleetInstance is one in-process sluice of a fleet.
type fleetInstance struct {
	id    string
	d     *daemon.Daemon
	admin string // http://127.0.0.1:port
	logs  *syncbuf.Buffer

	etcd, path string
	adminPort  int
}

// fleetConfig is an instance's configuration file: extraDB adds a
// database the others do not have; ttl is cluster.lease_ttl.
func fleetConfig(t *testing.T, adminPort int, etcd, id string, extraDB bool, ttl string) string {
	c := pgtest.Cluster(t)
	dbs := fmt.Sprintf("  %s:\n    hosts: [\"127.0.0.1:%d\"]\n", pgtest.AppDB, c.Port)
	if extraDB {
		dbs += fmt.Sprintf("  extra:\n    hosts: [\"127.0.0.1:%d\"]\n    dbname: %s\n", c.Port, pgtest.AppDB)
	}
	return fmt.Sprintf(`listen:
  address: 127.0.0.1:0
admin:
  address: 127.0.0.1:%d
  users: [%s]
log:
  format: json
users:
  - name: %s
    password: %s
databases:
%scluster:
  etcd:
    endpoints: ["%s"]
    dial_timeout: 2s
  instance_id: %s
  prefix: /fleet-test/
  lease_ttl: %s
`, adminPort, pgtest.AppUser, pgtest.AppUser, pgtest.AppPassword, dbs, etcd, id, ttl)
}

// startFleetInstance starts a sluice with a cluster section on etcd.
func startFleetInstance(t *testing.T, etcd, id string, extraDB bool) *fleetInstance {
	t.Helper()
	adminPort := freePort(t)
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fleetConfig(t, adminPort, etcd, id, extraDB, "2s")), 0o600))
	d, logs := startDaemonAt(t, path)
	inst := &fleetInstance{id: id, d: d, admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), logs: logs,
		etcd: etcd, path: path, adminPort: adminPort}
	t.Cleanup(inst.stop)
	return inst
}

// rewrite writes the instance's configuration file again and reloads.
func (f *fleetInstance) rewrite(t *testing.T, extraDB bool, ttl string) {
	t.Helper()
	require.NoError(t, os.WriteFile(f.path, []byte(fleetConfig(t, f.adminPort, f.etcd, f.id, extraDB, ttl)), 0o600))
	require.NoError(t, f.d.Reload())
}

func (f *fleetInstance) stop() {
	if f.d != nil {
		f.d.Shutdown()
		f.d = nil
	}
}

func (f *fleetInstance) dsn(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		f.d.Proxy.Addr().(*net.TCPAddr).Port, pgtest.AppUser, pgtest.AppPassword, db)
}

// apiPeers reads GET /api/peers.
func (f *fleetInstance) apiPeers(t *testing.T) []console.Peer {
	t.Helper()
	code, body := get(t, f.admin+"/api/peers")
	require.Equal(t, 200, code, body)
	var ps []console.Peer
	require.NoError(t, json.Unmarshal([]byte(body), &ps), body)
	return ps
}

func peerIDs(ps []console.Peer) map[string]console.Peer {
	out := map[string]console.Peer{}
	for _, p := range ps {
		out[p.InstanceID] = p
	}
	return out
}

// readyz reads /readyz as JSON.
func (f *fleetInstance) readyz(t *testing.T) (int, map[string]any) {
	t.Helper()
	code, body := get(t, f.admin+"/readyz")
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	return code, m
}

// eventually polls cond; the bound is a guard against a hang, not an
// expectation about timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func selectOne(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rs, err := conn.Exec(ctx, "SELECT 1").ReadAll()
	require.NoError(t, err)
	require.Equal(t, "1", string(rs[0].Rows[0][0]))
}

// TestFleetMembership: three sluices on one etcd see each other in SHOW
// PEERS and /api/peers with distinct peer numbers and one secret; the
// one with another database list is flagged and warned about; one that
// stops leaves the others' view; with etcd stopped they keep serving and
// say so in /readyz and the metrics; with etcd back they register again.
func TestFleetMembership(t *testing.T) {
	etcd := etcdtest.Start(t)
	s1 := startFleetInstance(t, etcd.Endpoint(), "s1", false)
	s2 := startFleetInstance(t, etcd.Endpoint(), "s2", false)
	s3 := startFleetInstance(t, etcd.Endpoint(), "s3", true)
	fleet := []*fleetInstance{s1, s2, s3}
	for _, f := range fleet {
		eventually(t, f.id+" to see three peers", func() bool { return len(f.apiPeers(t)) == 3 })
	}
	ids := map[int]string{}
	for _, f := range fleet {
		ps := peerIDs(f.apiPeers(t))
		self := ps[f.id]
		require.True(t, self.Self, "%s marks itself", f.id)
		require.Equal(t, int(f.d.Cluster.PeerID()), self.PeerID)
		require.Equal(t, f.d.Proxy.Addr().String(), self.Address, "the advertised address defaults to the bound listener")
		if other, dup := ids[self.PeerID]; dup {
			t.Fatalf("%s and %s both hold peer number %d", f.id, other, self.PeerID)
		}
		ids[self.PeerID] = f.id
		require.Len(t, f.d.Cluster.Secret(), 32)
		require.Equal(t, s1.d.Cluster.Secret(), f.d.Cluster.Secret(), "one fleet secret")
	}

	// s1's view: s3's database list differs.
	ps := peerIDs(s1.apiPeers(t))
	require.True(t, ps["s2"].ConfigMatches)
	require.False(t, ps["s3"].ConfigMatches)
	require.Equal(t, []string{"databases"}, ps["s3"].ConfigDiffers)
	require.Equal(t, []string{pgtest.AppDB, "extra"}, ps["s3"].Databases)
	eventually(t, "s1 to warn about s3", func() bool {
		return strings.Contains(s1.logs.String(), `"msg":"configuration differs from other instances of the fleet`) &&
			strings.Contains(s1.logs.String(), `"instances":"s3 (databases)"`)
	})

	// SHOW PEERS on s1's console.
	cols, peerRows := s1.consoleView(t, "SHOW PEERS")
	require.Equal(t, []string{"peer_id", "host", "port", "pool_size", "instance_id", "address", "version", "started",
		"databases", "config_matches", "config_differs", "self"}, cols)
	require.Len(t, peerRows, 3)
	rows := map[string][]string{}
	for _, row := range peerRows {
		rows[row[4]] = row
	}
	require.Equal(t, []string{"0", "databases", "0"}, rows["s3"][9:])
	require.Equal(t, []string{"1", "", "1"}, rows["s1"][9:])

	// Through HAProxy (TCP, round robin) consecutive console sessions
	// land on each instance in turn, and each answers for the whole
	// fleet.
	lb := haproxytest.Start(t, s1.d.Proxy.Addr().String(), s2.d.Proxy.Addr().String(), s3.d.Proxy.Addr().String())
	answered := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lbHost, lbPort, err := net.SplitHostPort(lb.Addr())
	require.NoError(t, err)
	for range 3 {
		conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=sluice sslmode=disable",
			lbHost, lbPort, pgtest.AppUser, pgtest.AppPassword))
		require.NoError(t, err)
		rs, err := conn.Exec(ctx, "SHOW PEERS").ReadAll()
		conn.Close(ctx)
		require.NoError(t, err)
		require.Len(t, rs[0].Rows, 3)
		for _, r := range rs[0].Rows {
			if string(r[11]) == "1" {
				answered[string(r[4])] = true
			}
		}
	}
	require.Equal(t, map[string]bool{"s1": true, "s2": true, "s3": true}, answered)

	// s3 reloads with the fleet's databases: s1 sees it match. A changed
	// cluster key is kept until a restart, and the reload says so.
	s3.rewrite(t, false, "3s")
	eventually(t, "s1 to see s3 match after its reload", func() bool { return peerIDs(s1.apiPeers(t))["s3"].ConfigMatches })
	require.Contains(t, s3.logs.String(), `"msg":"cluster settings changed; they take effect after a restart"`)

	// s2 stops: its lease is revoked and the others see it leave.
	s2.stop()
	for _, f := range []*fleetInstance{s1, s3} {
		eventually(t, f.id+" to see s2 leave", func() bool {
			_, present := peerIDs(f.apiPeers(t))["s2"]
			return !present
		})
	}
	require.Contains(t, s2.logs.String(), `"msg":"left the fleet"`)

	// etcd stops: queries still pass; /readyz stays ready and says why
	// the instance is degraded; the metric says etcd is down.
	etcd.Stop()
	eventually(t, "s1 to report etcd down", func() bool {
		code, body := s1.readyz(t)
		return code == 200 && body["degraded"] != nil
	})
	_, body := s1.readyz(t)
	require.Contains(t, body["degraded"], "cluster: ")
	require.Contains(t, body["degraded"], "etcd")
	require.Equal(t, false, body["cluster"].(map[string]any)["etcd_up"])
	_, metrics := get(t, s1.admin+"/metrics")
	require.Contains(t, metrics, "sluice_cluster_etcd_up 0")
	selectOne(t, s1.dsn(pgtest.AppDB))
	selectOne(t, s3.dsn(pgtest.AppDB))

	// etcd is back: both register again (the lease may have expired
	// meanwhile) and see each other.
	etcd.Start()
	for _, f := range []*fleetInstance{s1, s3} {
		eventually(t, f.id+" to be registered again", func() bool {
			_, body := f.readyz(t)
			c, _ := body["cluster"].(map[string]any)
			return body["degraded"] == nil && c != nil && c["etcd_up"] == true && c["peer_id"] != float64(0)
		})
		eventually(t, f.id+" to see s1 and s3", func() bool {
			ps := peerIDs(f.apiPeers(t))
			_, a := ps["s1"]
			_, b := ps["s3"]
			return len(ps) == 2 && a && b
		})
	}
	_, metrics = get(t, s1.admin+"/metrics")
	require.Contains(t, metrics, "sluice_cluster_etcd_up 1")
	require.Contains(t, metrics, "sluice_cluster_peers 2")
	require.Contains(t, metrics, "sluice_cluster_config_mismatched_peers 0")

	// The cluster's families are documented and lint clean.
	documented := metricstest.DocumentedFamilies(t, "../../docs/operations.md")
	n := 0
	for name := range metricstest.ScrapedFamilies([]byte(metrics)) {
		if strings.HasPrefix(name, "sluice_cluster_") {
			require.Contains(t, documented, name, "exported but not in docs/operations.md's metrics table")
			n++
		}
	}
	require.Equal(t, 4, n)
	promtooltest.CheckMetrics(t, []byte(metrics))
}

// Without a cluster section there is no fleet: SHOW PEERS has no rows,
// /api/peers is an empty list and /readyz says nothing about a cluster.
func TestNoClusterNoPeers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	adminPort := freePort(t)
	writeOperatorConfig(t, path, adminPort, "info")
	d, _ := startDaemonAt(t, path)
	defer d.Shutdown()
	require.Nil(t, d.Cluster)
	f := &fleetInstance{d: d, admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort)}
	code, body := get(t, f.admin+"/api/peers")
	require.Equal(t, 200, code)
	require.JSONEq(t, "[]", body)
	code, body = get(t, f.admin+"/api/failover")
	require.Equal(t, 200, code)
	require.JSONEq(t, "[]", body)
	_, ready := f.readyz(t)
	require.NotContains(t, ready, "cluster")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm, err := pgconn.Connect(ctx, f.dsn("sluice"))
	require.NoError(t, err)
	defer adm.Close(ctx)
	rs, err := adm.Exec(ctx, "SHOW PEERS").ReadAll()
	require.NoError(t, err)
	require.Empty(t, rs[0].Rows)
	require.Equal(t, "SHOW", rs[0].CommandTag.String())
	rs, err = adm.Exec(ctx, "SHOW FAILOVER").ReadAll()
	require.NoError(t, err)
	require.Empty(t, rs[0].Rows)
	require.Equal(t, "SHOW", rs[0].CommandTag.String())
}
