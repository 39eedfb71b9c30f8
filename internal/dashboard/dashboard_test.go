package dashboard

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// fixture is a dashboard over a real registry, with a clock the test
// moves and a count of gathers.
type fixture struct {
	d         *Dashboard
	clock     time.Time
	gathers   int
	failovers *prometheus.CounterVec
	refused   *prometheus.CounterVec
	lag       *prometheus.GaugeVec
}

func newFixture(t *testing.T) *fixture {
	reg := prometheus.NewRegistry()
	fx := &fixture{clock: t0,
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: failovers, Help: "h"}, []string{"database"}),
		refused:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: loginFailures, Help: "h"}, []string{"reason"}),
	}
	fx.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: replayLag, Help: "h"}, []string{"database", "host"})
	unwatched := prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_unwatched_total", Help: "h"})
	reg.MustRegister(fx.failovers, fx.refused, fx.lag, unwatched)
	fx.failovers.WithLabelValues("appdb")
	fx.d = New(func() ([]*dto.MetricFamily, error) { fx.gathers++; return reg.Gather() })
	fx.d.now = func() time.Time { return fx.clock }
	return fx
}

func (fx *fixture) view(t *testing.T, after time.Duration) View {
	fx.clock = fx.clock.Add(after)
	v, err := fx.d.View()
	require.NoError(t, err)
	return v
}

func TestSnapshotsAreTakenLazilyAtMostOncePerInterval(t *testing.T) {
	fx := newFixture(t)
	fx.view(t, 0)
	fx.view(t, MinInterval/2)
	require.Equal(t, 1, fx.gathers, "a second viewer within MinInterval reuses the snapshot")
	fx.view(t, MinInterval/2)
	require.Equal(t, 2, fx.gathers)
	_, kept := fx.d.snaps[0].Series["sluice_unwatched_total"]
	require.False(t, kept, "only watched families are kept")

	// Two minutes of polling every 2 s keep a minute and one base.
	for range 60 {
		fx.view(t, 2*time.Second)
	}
	require.Len(t, fx.d.snaps, 31)
	require.Equal(t, Window, fx.d.snaps[30].At.Sub(fx.d.snaps[0].At))

	// After a pause in polling, the old snapshots are dropped: the
	// window restarts rather than spanning the pause.
	fx.refused.WithLabelValues("wrong_password").Inc()
	v := fx.view(t, time.Hour)
	require.Len(t, fx.d.snaps, 1)
	require.Zero(t, v.WindowSeconds)
	require.Nil(t, v.Refusals[0].LastWindow)
	require.Equal(t, 1.0, *v.Refusals[0].Total)
	fx.refused.WithLabelValues("wrong_password").Inc()
	v = fx.view(t, 2*time.Second)
	require.Equal(t, 2.0, v.WindowSeconds)
	require.Equal(t, 1.0, *v.Refusals[0].LastWindow)
}

func TestFailoverIsDatedByTheFirstSnapshotShowingIt(t *testing.T) {
	fx := newFixture(t)
	fx.view(t, 0)
	fx.failovers.WithLabelValues("appdb").Inc()
	v := fx.view(t, 2*time.Second)
	require.Equal(t, fx.clock, *v.Databases[0].LastFailover)
	seen := fx.clock
	v = fx.view(t, 2*time.Second)
	require.Equal(t, seen, *v.Databases[0].LastFailover, "kept while the count stays")

	// Seen only after a pause in polling: when it happened is unknown.
	fx = newFixture(t)
	fx.view(t, 0)
	fx.failovers.WithLabelValues("appdb").Inc()
	v = fx.view(t, time.Hour)
	require.Nil(t, v.Databases[0].LastFailover)
	require.Equal(t, 1.0, *v.Databases[0].Failovers)
}

func TestHandlerServesThePageAndItsData(t *testing.T) {
	fx := newFixture(t)
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		fx.d.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	w := get("/")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	require.Contains(t, w.Header().Get("Content-Security-Policy"), "connect-src 'self'")
	body := w.Body.String()
	require.Contains(t, body, "dashboard.json")
	for _, external := range []string{"http://", "https://", "//cdn", "@import"} {
		require.NotContains(t, body, external, "the page is self-contained")
	}

	w = get("/dashboard.json")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	var v View
	require.NoError(t, json.NewDecoder(strings.NewReader(w.Body.String())).Decode(&v))
	require.Equal(t, "appdb", v.Databases[0].Name)

	require.Equal(t, http.StatusNotFound, get("/nothing").Code)

	// A value JSON cannot carry is left out, not a broken answer.
	fx.lag.WithLabelValues("appdb", "a:1").Set(0.5)
	fx.lag.WithLabelValues("appdb", "b:2").Set(math.NaN())
	fx.clock = fx.clock.Add(MinInterval)
	w = get("/dashboard.json")
	v = View{}
	require.NoError(t, json.NewDecoder(strings.NewReader(w.Body.String())).Decode(&v))
	require.Equal(t, []HostView{{Host: "a:1", LagSeconds: f(0.5)}}, v.Databases[0].Hosts)
}

// A histogram exported as native with classic buckets as its fallback,
// as sluice's latency histograms are, is read through the classic ones.
func TestNativeHistogramsAreReadThroughTheirClassicBuckets(t *testing.T) {
	reg := prometheus.NewRegistry()
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: poolWait, Help: "h",
		Buckets:                     []float64{0.001, 0.01, 0.1},
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 160,
	}, []string{"database", "user"})
	reg.MustRegister(wait)
	d := New(reg.Gather)
	clock := t0
	d.now = func() time.Time { return clock }
	wait.WithLabelValues("appdb", "app").Observe(5) // before the window
	_, err := d.View()
	require.NoError(t, err)
	for range 90 {
		wait.WithLabelValues("appdb", "app").Observe(0.0005)
	}
	for range 10 {
		wait.WithLabelValues("appdb", "bob").Observe(0.05)
	}
	clock = clock.Add(2 * time.Second)
	v, err := d.View()
	require.NoError(t, err)
	p := v.Databases[0].Wait
	require.Equal(t, 100.0, *p.Count)
	require.InDelta(t, 0.001*50/90, *p.P50, 1e-12)
	require.InDelta(t, 0.01+0.09*5/10, *p.P95, 1e-12)
	require.InDelta(t, 0.01+0.09*9/10, *p.P99, 1e-12)
}
