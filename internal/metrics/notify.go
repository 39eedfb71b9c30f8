package metrics

import "github.com/prometheus/client_golang/prometheus"

// NotifyMetrics are the LISTEN fan-out's (internal/notify).
type NotifyMetrics struct {
	// ListenerConnections: the pools' listener connections open now.
	ListenerConnections *prometheus.GaugeVec
	// NotificationsReceived: notifications read by listener connections.
	NotificationsReceived prometheus.Counter
	// NotificationsDropped: notifications dropped from a full client
	// queue (limits.max_pending_notifications).
	NotificationsDropped prometheus.Counter
}

func newNotifyMetrics(reg *prometheus.Registry) NotifyMetrics {
	m := NotifyMetrics{
		ListenerConnections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_listener_connections",
			Help: "Transaction mode: server connections open for the LISTEN fan-out (one per pool with listening clients, outside max_size, inside max_db_connections).",
		}, []string{"database", "user"}),
		NotificationsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_notifications_received_total",
			Help: "Transaction mode: notifications received by the LISTEN fan-out's listener connections.",
		}),
		NotificationsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_notifications_dropped_total",
			Help: "Transaction mode: notifications dropped because a client had limits.max_pending_notifications waiting (oldest first).",
		}),
	}
	reg.MustRegister(m.ListenerConnections, m.NotificationsReceived, m.NotificationsDropped)
	return m
}
