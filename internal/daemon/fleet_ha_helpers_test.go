package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// Helpers of the HA fleet tests (fleet_failover_test.go,
// fleet_leader_kill_test.go): configuration, the decision in etcd,
// where writes go, what was written, SHOW FAILOVER.

// haConfig is the configuration of an instance of an HA fleet: AppDB
// on the servers listening on ports, in transaction mode, with
// auto_promote.
func haConfig(listen, admin, etcd, id string, ports ...int) string {
	hosts := make([]string, len(ports))
	for i, p := range ports {
		hosts[i] = fmt.Sprintf(`"127.0.0.1:%d"`, p)
	}
	return fmt.Sprintf(`listen: {address: "%s"}
admin: {address: "%s", users: [%s]}
log: {format: json}
shutdown_timeout: 2s
users:
  - {name: %s, password: %s}
  - {name: %s, password: %s}
databases:
  %s:
    hosts: [%s]
    pool_mode: transaction
    health_check_interval: 300ms
    pool: {max_size: 10, borrow_timeout: 60s}
    backend: {dial_timeout: 2s}
    failover: {user: %s, auto_promote: true, promote_after: 2s}
cluster:
  etcd: {endpoints: ["%s"], dial_timeout: 1s}
  instance_id: %s
  prefix: %s
  lease_ttl: 2s
`, listen, admin, pgtest.AppUser, pgtest.AppUser, pgtest.AppPassword, pgtest.MonitorUser, pgtest.MonitorPassword, pgtest.AppDB,
		strings.Join(hosts, ", "), pgtest.MonitorUser, etcd, id, haPrefix)
}

// readDecision reads <prefix>primary/appdb from the etcd at endpoint.
func readDecision(t *testing.T, endpoint string) (epoch uint64, primary string, done bool, leader string, timeline uint32) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, haPrefix+"primary/"+pgtest.AppDB)
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return 0, "", false, "", 0
	}
	var d struct {
		Epoch    uint64 `json:"epoch"`
		Primary  string `json:"primary"`
		Done     bool   `json:"done"`
		Leader   string `json:"leader"`
		Timeline uint32 `json:"timeline"`
	}
	require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &d))
	return d.Epoch, d.Primary, d.Done, d.Leader, d.Timeline
}

// writesGoToDSN is writesGoTo for a client connecting with dsn.
func writesGoToDSN(dsn string, port int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	defer c.Close(ctx)
	rs, err := c.Exec(ctx, "BEGIN READ WRITE; SELECT inet_server_port(); COMMIT").ReadAll()
	return err == nil && len(rs) == 3 && len(rs[1].Rows) == 1 && string(rs[1].Rows[0][0]) == strconv.Itoa(port)
}

// checkWritesOn: every number w had acknowledged is on np, none twice.
func checkWritesOn(t *testing.T, np *pgserver.Cluster, w *fleetWriter) {
	ctx := context.Background()
	rows, err := np.QueryDB(ctx, pgtest.AppDB, "SELECT n, count(*) FROM ha_writes GROUP BY n HAVING count(*) > 1")
	require.NoError(t, err)
	require.Empty(t, rows, "numbers written twice")
	rows, err = np.QueryDB(ctx, pgtest.AppDB, "SELECT n FROM ha_writes")
	require.NoError(t, err)
	have := map[int]bool{}
	for _, r := range rows {
		v, _ := strconv.Atoi(r[0])
		have[v] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lost []int
	for _, v := range w.acked {
		if !have[v] {
			lost = append(lost, v)
		}
	}
	require.Empty(t, lost, "acknowledged writes lost (of %d, largest acked %d, failures %v)", len(w.acked), w.acked[len(w.acked)-1], w.failed)
	t.Logf("%d writes acknowledged, 0 lost, 0 duplicated; %d failed (not retried): %v", len(w.acked), len(w.failed), w.failed)
}

// apiFailover reads GET /api/failover.
func (f *fleetInstance) apiFailover(t *testing.T) []console.Failover {
	t.Helper()
	code, body := get(t, f.admin+"/api/failover")
	require.Equal(t, 200, code, body)
	var fo []console.Failover
	require.NoError(t, json.Unmarshal([]byte(body), &fo), body)
	return fo
}

// showFailover runs SHOW FAILOVER on the instance's console and returns
// its one row (NULL as "").
func (f *fleetInstance) showFailover(t *testing.T) []string {
	t.Helper()
	cols, rows := f.consoleView(t, "SHOW FAILOVER")
	require.Equal(t, []string{"database", "primary", "timeline", "epoch", "done", "decided_by", "decided_at", "leader",
		"leading", "etcd_up", "can_promote", "why_not"}, cols)
	require.Len(t, rows, 1)
	return rows[0]
}

// consoleView runs a SHOW command on the instance's admin console and
// returns the column names and the rows as text (NULL as "").
func (f *fleetInstance) consoleView(t *testing.T, show string) (cols []string, rows [][]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm, err := pgconn.Connect(ctx, f.dsn("sluice"))
	require.NoError(t, err)
	defer adm.Close(ctx)
	rs, err := adm.Exec(ctx, show).ReadAll()
	require.NoError(t, err)
	for _, fd := range rs[0].FieldDescriptions {
		cols = append(cols, fd.Name)
	}
	for _, r := range rs[0].Rows {
		row := make([]string, len(r))
		for i, v := range r {
			row[i] = string(v)
		}
		rows = append(rows, row)
	}
	return cols, rows
}
