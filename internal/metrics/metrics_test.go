package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Full returns metrics with every family sluice defines holding at least
// one series: a pool, a monitored database with a primary and a standby,
// and one observation in each per-pool histogram.
func full() *metrics.Metrics {
	m := metrics.New(func() []metrics.PoolStat {
		return []metrics.PoolStat{{Database: "appdb", User: "app", Idle: 1, Busy: 1, MaxSize: 3, Clients: 2}}
	})
	m.SetTopology(func() []metrics.HostStat {
		return []metrics.HostStat{{Database: "appdb", Host: "a", Role: "primary", Up: true}, {Database: "appdb", Host: "b", Role: "standby", Up: true}}
	}, func() []metrics.DatabaseStat { return []metrics.DatabaseStat{{Database: "appdb"}} })
	m.NoPrimaryTotal.WithLabelValues("appdb").Add(1)
	m.Pins.WithLabelValues("listen").Inc()
	m.PinnedClients.WithLabelValues("listen").Inc()
	m.ClientLoginFailure.WithLabelValues("wrong_password").Inc()
	p := m.Pool("appdb", "app")
	p.Ready('I')
	p.BorrowWaited(0)
	p.TransactionHeld(0)
	p.QueryAnswered(0)
	p.Connected(0)
	p.ClientIn(0)
	p.ClientOut(0)
	return m
}

// No family's name is another family's name plus a suffix OpenMetrics
// gives series (_total, _count, ...): a gauge x beside a counter x_total,
// as sluice_no_primary_seconds was beside sluice_no_primary_seconds_total,
// makes one name mean two things. (Go's own collector has such a pair,
// go_memstats_alloc_bytes{,_total}; only sluice's families are checked.)
func TestMetricNamesDoNotClash(t *testing.T) {
	mfs, err := full().Registry.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "sluice_") {
			names[mf.GetName()] = true
		}
	}
	require.Contains(t, names, "sluice_no_primary_seconds_total")
	for name := range names {
		for _, suffix := range []string{"_total", "_count", "_sum", "_bucket", "_created", "_info"} {
			require.False(t, names[name+suffix], "%s and %s%s are both exported", name, name, suffix)
		}
	}
}

// BenchmarkTransactionObservations is what one transaction-mode
// transaction adds for metrics: a borrow's wait, a ReadyForQuery counted,
// the attachment's hold observed. allocs/op must be 0.
func BenchmarkTransactionObservations(b *testing.B) {
	p := metrics.New(nil).Pool("appdb", "app")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.BorrowWaited(0)
		p.Ready('I')
		p.TransactionHeld(time.Duration(i%5000) * time.Microsecond)
	}
}

// The histograms are native (a schema, sparse spans) with classic buckets
// beside them, for scrapers that read only those.
func TestHistogramsAreNativeWithClassicBuckets(t *testing.T) {
	mfs, err := full().Registry.Gather()
	require.NoError(t, err)
	n := 0
	for _, mf := range mfs {
		if mf.GetType().String() != "HISTOGRAM" || !strings.HasPrefix(mf.GetName(), "sluice_") {
			continue
		}
		n++
		h := mf.GetMetric()[0].GetHistogram()
		require.NotNil(t, h.Schema, "%s: no native schema", mf.GetName())
		require.NotEmpty(t, h.GetBucket(), "%s: no classic buckets", mf.GetName())
	}
	require.Equal(t, 6, n, "the six histograms")
}
