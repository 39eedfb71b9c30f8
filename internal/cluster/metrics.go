package cluster

import "github.com/prometheus/client_golang/prometheus"

// Collectors are the member's metrics, read at scrape time (nothing is
// observed on any hot path): whether etcd answers and this instance is
// registered, its peer number, and the live fleet as it sees it. The
// caller registers them (the daemon, on the proxy's own registry).
func (m *Member) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_cluster_etcd_up",
			Help: "1 while this instance is registered in etcd and etcd answers, 0 while it is not (sluice keeps serving; see /readyz for why).",
		}, func() float64 {
			if m.up.Load() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_cluster_peer_id",
			Help: "The peer number this instance holds in the fleet (0: none at the moment).",
		}, func() float64 { return float64(m.PeerID()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_cluster_peers",
			Help: "Live instances of the fleet this instance sees in etcd, itself included.",
		}, func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(len(m.peers))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_cluster_config_mismatched_peers",
			Help: "Live instances whose databases, users or auth differ from this instance's.",
		}, func() float64 {
			n := 0
			for _, p := range m.Peers() {
				if !p.ConfigMatches {
					n++
				}
			}
			return float64(n)
		}),
	}
}
