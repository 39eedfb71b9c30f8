package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	roleDesc = prometheus.NewDesc("sluice_server_role",
		"1 for each database server's current role as sluice sees it (primary, standby, fenced: an old primary never written to, unknown).",
		[]string{"database", "host", "role"}, nil)
	upDesc = prometheus.NewDesc("sluice_server_up",
		"Whether the last probe of a database server succeeded.", []string{"database", "host"}, nil)
	lagDesc = prometheus.NewDesc("sluice_server_replay_lag_seconds",
		"How far a standby's replay is behind the primary.", []string{"database", "host"}, nil)
	roConnsDesc = prometheus.NewDesc("sluice_server_readonly_connections",
		"Server connections of read-only sessions (standby pools, all users) on each monitored server, by state: active (serving a client) or idle.",
		[]string{"database", "host", "state"}, nil)
	failoversDesc = prometheus.NewDesc("sluice_failovers_total",
		"Moves of the writable primary from one server to another, whoever promoted it.", []string{"database"}, nil)
	// Not sluice_no_primary_seconds: a gauge x beside the counter x_total
	// (sluice_no_primary_seconds_total) is one name clash in OpenMetrics.
	noPrimaryDesc = prometheus.NewDesc("sluice_no_primary_current_seconds",
		"How long the database has been without a writable primary, now (0 while it has one).", []string{"database"}, nil)
)

// topoCollector reports monitored databases at scrape time.
type topoCollector struct {
	mu    sync.Mutex
	hosts func() []HostStat
	dbs   func() []DatabaseStat
}

func (c *topoCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- roleDesc
	ch <- upDesc
	ch <- lagDesc
	ch <- roConnsDesc
	ch <- failoversDesc
	ch <- noPrimaryDesc
}

func (c *topoCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	hosts, dbs := c.hosts, c.dbs
	c.mu.Unlock()
	if hosts != nil {
		for _, h := range hosts() {
			ch <- prometheus.MustNewConstMetric(roleDesc, prometheus.GaugeValue, 1, h.Database, h.Host, h.Role)
			up := 0.0
			if h.Up {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, h.Database, h.Host)
			if h.Role == "standby" {
				ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, h.LagSeconds, h.Database, h.Host)
			}
			ch <- prometheus.MustNewConstMetric(roConnsDesc, prometheus.GaugeValue, float64(h.ReadOnlyActive), h.Database, h.Host, "active")
			ch <- prometheus.MustNewConstMetric(roConnsDesc, prometheus.GaugeValue, float64(h.ReadOnlyIdle), h.Database, h.Host, "idle")
		}
	}
	if dbs != nil {
		for _, d := range dbs() {
			ch <- prometheus.MustNewConstMetric(failoversDesc, prometheus.CounterValue, float64(d.Failovers), d.Database)
			ch <- prometheus.MustNewConstMetric(noPrimaryDesc, prometheus.GaugeValue, d.NoPrimarySeconds, d.Database)
		}
	}
}
