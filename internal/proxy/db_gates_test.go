package proxy_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/sluicetest"
)

// dbServerConns counts the server connections of the test users to AppDB
// (the sampler's own connection is the superuser's, not counted).
func dbServerConns(t *testing.T) int {
	t.Helper()
	rows, err := pgtest.Cluster(t).Query(context.Background(), fmt.Sprintf(
		"SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND usename IN ('%s', '%s')", pgtest.AppDB, pgtest.AppUser, pgtest.MD5User))
	require.NoError(t, err)
	n, err := strconv.Atoi(rows[0][0])
	require.NoError(t, err)
	return n
}

// sampleConns samples dbServerConns until stop is closed and returns the
// largest count seen and how many samples were taken.
func sampleConns(t *testing.T, stop <-chan struct{}) (peak, samples *atomic.Int64, done <-chan struct{}) {
	peak, samples = &atomic.Int64{}, &atomic.Int64{}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := int64(dbServerConns(t))
			samples.Add(1)
			if n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	return peak, samples, ch
}

// max_db_connections bounds the server connections of all users' pools
// of a database together (PgBouncer's meaning), not each pool: two users
// with max_size 20 each and 16 pgbench clients each never hold more than
// 4 server connections, and every transaction completes (borrows wait
// for the database's budget as for a full pool). Without the gate the
// server sees up to 32.
func TestMaxDBConnectionsBoundsAllUsersPools(t *testing.T) {
	h := start(t, "max_size: 20\n      max_db_connections: 4\n    pool_mode: transaction")
	stop := make(chan struct{})
	peak, samples, sampled := sampleConns(t, stop)

	run := func(user, password string) string {
		cmd := exec.Command("pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", user, "-n",
			"-S", "-c", "16", "-j", "2", "-t", "300", pgtest.AppDB)
		cmd.Env = append(cmd.Environ(), "PGPASSWORD="+password)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	wg.Add(2)
	go func() { defer wg.Done(); outs[0] = run(pgtest.AppUser, pgtest.AppPassword) }()
	go func() { defer wg.Done(); outs[1] = run(pgtest.MD5User, pgtest.MD5Password) }()
	wg.Wait()
	close(stop)
	<-sampled
	for _, out := range outs {
		require.Contains(t, out, "number of transactions actually processed: 4800/4800")
	}
	t.Logf("peak server connections %d over %d samples", peak.Load(), samples.Load())
	require.Positive(t, peak.Load())
	require.LessOrEqual(t, peak.Load(), int64(4), "max_db_connections: 4 exceeded")
	require.LessOrEqual(t, dbServerConns(t), 4)

	snap := h.srv.Snapshot()
	require.Equal(t, 4, snap.Databases[0].MaxConns, "SHOW DATABASES' max_connections")
}

// max_db_connections applies at reload, alone: set on a database whose
// pool is open already, its connections count at once (idle ones beyond
// the limit are closed), and the server never sees more afterwards; a
// later reload moves the limit.
func TestMaxDBConnectionsAppliesAtReload(t *testing.T) {
	h := start(t, "max_size: 10\n    pool_mode: transaction")
	pgbench(t, h, "-S", "-c", "8", "-j", "2", "-t", "100")
	require.Greater(t, dbServerConns(t), 2, "the pool opened more than the coming limit")

	reload := func(limit int) {
		text := configText(t, h.sock, fmt.Sprintf("max_size: 10\n      max_db_connections: %d\n    pool_mode: transaction", limit), "")
		cfg, err := config.Parse([]byte(text), sluicetest.NoEnv)
		require.NoError(t, err)
		require.NoError(t, h.srv.Reload(cfg))
	}
	reload(2)
	require.Equal(t, 2, dbServerConns(t), "idle connections beyond the new limit are closed at the reload")
	stop := make(chan struct{})
	peak, _, sampled := sampleConns(t, stop)
	pgbench(t, h, "-S", "-c", "8", "-j", "2", "-t", "100")
	close(stop)
	<-sampled
	require.LessOrEqual(t, peak.Load(), int64(2))

	reload(3)
	require.Equal(t, 3, h.srv.Snapshot().Databases[0].MaxConns)
}
