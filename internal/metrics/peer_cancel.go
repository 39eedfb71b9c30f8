package metrics

import "github.com/prometheus/client_golang/prometheus"

// The results of forwarded cancels (a fleet's cancel anywhere), the label
// values of PeerCancelsSent and PeerCancelsReceived. Every one is
// exported from the start, at 0, so that rates work from the first scrape.
var (
	PeerCancelSentResults     = []string{"ok", "peer_unknown", "overloaded", "no_secret", "dial_error", "send_error"}
	PeerCancelReceivedResults = []string{"ok", "bad_mac", "stale", "replayed", "unknown_key"}
)

func newPeerCancels(reg *prometheus.Registry) (sent, received *prometheus.CounterVec) {
	sent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_peer_cancels_sent_total",
		Help: "Cancel requests for another instance's key forwarded to it, by result (ok, peer_unknown, overloaded, no_secret, dial_error, send_error).",
	}, []string{"result"})
	received = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_peer_cancels_received_total",
		Help: "Forwarded cancel requests received from other instances, by result (ok, bad_mac, stale, replayed, unknown_key).",
	}, []string{"result"})
	for _, r := range PeerCancelSentResults {
		sent.WithLabelValues(r)
	}
	for _, r := range PeerCancelReceivedResults {
		received.WithLabelValues(r)
	}
	reg.MustRegister(sent, received)
	return sent, received
}
