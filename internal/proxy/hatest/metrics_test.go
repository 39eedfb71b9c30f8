package hatest

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// hostView is one server as sluice's metrics show it.
type hostView struct {
	role string
	up   bool
	lag  float64
	// roConns: server connections of read-only sessions on the host.
	roConns float64
}

// hosts reads the topology metrics of database db, by host.
func (r *roSluice) hosts(t *testing.T, db string) map[string]hostView {
	mfs, err := r.srv.Metrics().Registry.Gather()
	require.NoError(t, err)
	out := map[string]hostView{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["database"] != db || labels["host"] == "" {
				continue
			}
			h := out[labels["host"]]
			switch mf.GetName() {
			case "sluice_server_role":
				h.role = labels["role"]
			case "sluice_server_up":
				h.up = m.GetGauge().GetValue() == 1
			case "sluice_server_replay_lag_seconds":
				h.lag = m.GetGauge().GetValue()
			case "sluice_server_readonly_connections":
				h.roConns += m.GetGauge().GetValue()
			default:
				continue
			}
			out[labels["host"]] = h
		}
	}
	return out
}

func hostName(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
