package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-proxy/sluice/internal/version"
)

// processMetrics describe the process itself: which build runs, and
// whether the last configuration reload worked (named as Prometheus
// names its own, so the same alerts fit).
type processMetrics struct {
	reloadSuccess   prometheus.Gauge // sluice_config_last_reload_successful
	reloadTimestamp prometheus.Gauge // ..._success_timestamp_seconds
	reloadFailures  prometheus.Counter
}

func newProcessMetrics(reg *prometheus.Registry) processMetrics {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_build_info",
		Help: "Always 1; its labels say which sluice build runs (version and revision as `sluice version` prints them) and with which Go.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(version.Version, version.Commit, runtime.Version()).Set(1)
	p := processMetrics{
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or failed (0); 1 after start-up.",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully (start-up or reload), as Unix time.",
		}),
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_config_reload_failures_total",
			Help: "Configuration reloads that failed (the running configuration was kept).",
		}),
	}
	p.reloadSuccess.Set(1)
	p.reloadTimestamp.Set(float64(time.Now().UnixNano()) / 1e9)
	reg.MustRegister(build, p.reloadSuccess, p.reloadTimestamp, p.reloadFailures)
	return p
}

// NoteReload records a configuration reload's outcome: err nil when the
// new configuration is running, else why it was refused. Whoever reloads
// (SIGHUP, the console's RELOAD, the HTTP API) calls it once per attempt.
func (m *Metrics) NoteReload(err error) {
	if err != nil {
		m.process.reloadSuccess.Set(0)
		m.process.reloadFailures.Inc()
		return
	}
	m.process.reloadSuccess.Set(1)
	m.process.reloadTimestamp.Set(float64(time.Now().UnixNano()) / 1e9)
}
