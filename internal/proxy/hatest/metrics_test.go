package hatest

import (
	"strconv"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/proxy"
)

// The tests read sluice's metrics from its registry, as a scrape of
// /metrics would, so what operators see is what is checked.

// hostView is one server as sluice's metrics show it.
type hostView struct {
	role string
	up   bool
	lag  float64
	// roConns: server connections of read-only sessions on the host.
	roConns float64
}

// gather calls each for every metric sample of srv, with its name and labels.
func gather(t *testing.T, srv *proxy.Server, each func(name string, labels map[string]string, m *dto.Metric)) {
	t.Helper()
	mfs, err := srv.Metrics().Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			each(mf.GetName(), labels, m)
		}
	}
}

// hostViews reads the topology metrics of database db, by host.
func hostViews(t *testing.T, srv *proxy.Server, db string) map[string]hostView {
	t.Helper()
	out := map[string]hostView{}
	gather(t, srv, func(name string, labels map[string]string, m *dto.Metric) {
		if labels["database"] != db || labels["host"] == "" {
			return
		}
		h := out[labels["host"]]
		switch name {
		case "sluice_server_role":
			h.role = labels["role"]
		case "sluice_server_up":
			h.up = m.GetGauge().GetValue() == 1
		case "sluice_server_replay_lag_seconds":
			h.lag = m.GetGauge().GetValue()
		case "sluice_server_readonly_connections":
			h.roConns += m.GetGauge().GetValue()
		default:
			return
		}
		out[labels["host"]] = h
	})
	return out
}

// hosts reads the topology metrics of database db, by host.
func (r *roSluice) hosts(t *testing.T, db string) map[string]hostView {
	return hostViews(t, r.srv, db)
}

// dbMetric is the value of a counter or gauge labelled by database only;
// 0 when sluice has not reported it (yet), like a counter never added to.
func dbMetric(t *testing.T, srv *proxy.Server, name, db string) float64 {
	t.Helper()
	var v float64
	gather(t, srv, func(n string, labels map[string]string, m *dto.Metric) {
		if n == name && labels["database"] == db && len(labels) == 1 {
			v = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	})
	return v
}

func hostName(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
