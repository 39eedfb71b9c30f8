package hatest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/metricstest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/promtooltest"
)

// eventOnly are documented families that appear only after an event the
// test does not cause: a failover (the time without a primary is added
// when one is back).
var eventOnly = []string{"sluice_no_primary_seconds_total",
	// Exported only with a cluster section (internal/cluster); the
	// fleet test in internal/daemon scrapes, lints and checks them.
	"sluice_cluster_etcd_up", "sluice_cluster_peer_id", "sluice_cluster_peers", "sluice_cluster_config_mismatched_peers",
	"sluice_cluster_failover_decisions_total", "sluice_cluster_failover_leader", "sluice_cluster_fencing_epoch", "sluice_cluster_failover_blocked",
	// With a cluster section and a max_db_connections only; the daemon's
	// TestLosingAnInstanceLosesOnlyItsTransactions reads it.
	"sluice_cluster_budget_share"}

// A scrape of a sluice that served traffic in front of a primary and a
// standby, in session and transaction mode, through both listeners, with
// a pinned client and a refused login, so that nearly every series has
// values: promtool check metrics finds nothing to lint, and the families
// it declares are exactly those docs/operations.md's metrics table lists
// (apart from eventOnly). Before, the scrape had sluice_no_primary_seconds
// beside sluice_no_primary_seconds_total, and the table lacked the
// families added since.
func TestScrapeIsCleanAndDocumented(t *testing.T) {
	promtooltest.Path(t) // skip (fail in CI) before starting clusters
	set := pgtest.ReplicaSet(t, 1)
	r := startReadOnly(t, set)
	r.waitRoles(t, r.standbys...)
	ctx := context.Background()

	for _, db := range []string{pgtest.AppDB, "appdb_session"} {
		c, err := pgconn.Connect(ctx, dsnFor(r.rw, db, ""))
		require.NoError(t, err)
		for _, sql := range []string{"SELECT 1", "BEGIN", "SELECT 2", "COMMIT"} {
			_, err := c.Exec(ctx, sql).ReadAll()
			require.NoError(t, err)
		}
		if db == pgtest.AppDB {
			_, err := c.Exec(ctx, "LISTEN scrape_test").ReadAll() // opens the pool's listener connection
			require.NoError(t, err)
			_, err = c.Exec(ctx, "SELECT pg_advisory_lock(4711)").ReadAll() // pins the transaction-mode client
			require.NoError(t, err)
		}
		defer c.Close(ctx)
	}
	ro, err := pgconn.Connect(ctx, dsnFor(r.ro, pgtest.AppDB, ""))
	require.NoError(t, err)
	_, err = ro.Exec(ctx, "SELECT 1").ReadAll()
	require.NoError(t, err)
	defer ro.Close(ctx)
	_, err = pgconn.Connect(ctx, strings.Replace(dsnFor(r.rw, pgtest.AppDB, ""), "password="+pgtest.AppPassword, "password=wrong", 1))
	require.Error(t, err)

	reg := r.srv.Metrics().Registry
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})) // what admin serves on /metrics
	defer hs.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(hs.URL)
	require.NoError(t, err)
	scrape, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	promtooltest.CheckMetrics(t, scrape)

	var scraped []string
	for name := range metricstest.ScrapedFamilies(scrape) {
		if strings.HasPrefix(name, "sluice_") {
			scraped = append(scraped, name)
		}
	}
	sort.Strings(scraped)
	documented := metricstest.DocumentedFamilies(t, "../../../docs/operations.md")
	for _, name := range scraped {
		require.Contains(t, documented, name, "exported but not in docs/operations.md's metrics table")
	}
	for _, name := range documented {
		if !slices.Contains(eventOnly, name) {
			require.Contains(t, scraped, name, "in docs/operations.md's metrics table but not exported")
		}
	}
	t.Logf("%d sluice families scraped, %d documented", len(scraped), len(documented))
}
