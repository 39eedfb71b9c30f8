// Package metrics defines sluice's Prometheus metrics on a registry of its
// own (never the global one, so tests and embedders can run several
// instances). Hot-path counters are resolved once here so that the relay
// pays one atomic add per chunk, never a label lookup.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// activeClients is PgBouncer's cl_active: logged-in clients not queued
// for a server connection.
func (p PoolStat) activeClients() int {
	if p.WaitBeforeLogin {
		return p.Clients
	}
	return max(p.Clients-p.Waiting, 0)
}

// PoolStat is one pool's state at scrape time.
type PoolStat struct {
	Database, User string
	Idle, Busy     int
	Waiting        int
	// MaxSize is the pool's max_size; Clients its logged-in clients
	// (PoolMetrics.Clients), of which Waiting may be queued, unless
	// WaitBeforeLogin: in session mode a client waits for its server
	// connection while logging in, so its waiters are not among Clients.
	MaxSize, Clients int
	WaitBeforeLogin  bool
	// Cumulative counts.
	Recycled, DeadRemoved, Timeouts uint64
	// Replaced: closed to open one with another client's startup
	// parameters (settings affinity, pool full).
	Replaced uint64
}

// HostStat is one database server's state as the topology monitor sees
// it, at scrape time.
type HostStat struct {
	Database, Host, Role string // role: primary, standby, fenced, unknown
	Up                   bool
	LagSeconds           float64 // standbys; 0 when unknown
	// ReadOnlyActive and ReadOnlyIdle count the server connections the
	// read-only side (standby pools, all users) holds on the host.
	ReadOnlyActive, ReadOnlyIdle int
}

// DatabaseStat is a monitored database's failover state at scrape time.
type DatabaseStat struct {
	Database         string
	Failovers        int
	NoPrimarySeconds float64 // how long it has had no writable primary; 0 while it has one
}

// Metrics holds every metric sluice exports.
type Metrics struct {
	Registry *prometheus.Registry

	ClientConnections  prometheus.Gauge
	ClientSessions     prometheus.Counter
	ClientLoginFailure *prometheus.CounterVec
	BytesClientToSrv   prometheus.Counter
	BytesSrvToClient   prometheus.Counter
	ConnectAttempts    prometheus.Counter
	ConnectFailures    prometheus.Counter
	CancelRequests     prometheus.Counter
	// PeerCancelsSent and PeerCancelsReceived count forwarded cancels by
	// result (PeerCancelSentResults, PeerCancelReceivedResults).
	PeerCancelsSent, PeerCancelsReceived *prometheus.CounterVec
	// Transaction pooling: clients pinned to their server connection.
	Pins          *prometheus.CounterVec
	PinnedClients *prometheus.GaugeVec
	// NoPrimaryTotal accumulates, per database, the time without a
	// writable primary (added when a primary is back).
	NoPrimaryTotal *prometheus.CounterVec
	// Notify: the LISTEN fan-out's (notify.go).
	Notify NotifyMetrics

	topo    topoCollector
	pool    poolVecs
	process processMetrics
}

// SetTopology makes scrapes report the monitored databases' servers.
func (m *Metrics) SetTopology(hosts func() []HostStat, dbs func() []DatabaseStat) {
	m.topo.mu.Lock()
	m.topo.hosts, m.topo.dbs = hosts, dbs
	m.topo.mu.Unlock()
}

// New creates the metrics; pools is called at every scrape to report
// server connections by state.
func New(pools func() []PoolStat) *Metrics {
	reg := prometheus.NewRegistry()
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_relayed_bytes_total",
		Help: "Bytes relayed between clients and servers, by direction.",
	}, []string{"direction"})
	m := &Metrics{
		Registry: reg,
		ClientConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_client_connections",
			Help: "Client connections currently open (including those still logging in).",
		}),
		ClientSessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_client_sessions_total",
			Help: "Client sessions that logged in successfully.",
		}),
		ClientLoginFailure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_client_login_failures_total",
			Help: "Client logins refused, by reason.",
		}, []string{"reason"}),
		BytesClientToSrv: bytes.WithLabelValues("client_to_server"),
		BytesSrvToClient: bytes.WithLabelValues("server_to_client"),
		ConnectAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_server_connect_attempts_total",
			Help: "Attempts to open a server connection.",
		}),
		ConnectFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_server_connect_failures_total",
			Help: "Attempts to open a server connection that failed.",
		}),
		CancelRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_cancel_requests_total",
			Help: "Cancel requests received from clients.",
		}),
		Pins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_pins_total",
			Help: "Times a transaction-pooled client was pinned to its server connection, by reason (temp_table, advisory_lock, listen, hold_cursor, sql_prepare, set_role, load).",
		}, []string{"reason"}),
		PinnedClients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_pinned_clients",
			Help: "Transaction-pooled clients currently pinned to their server connection, by reason.",
		}, []string{"reason"}),
		NoPrimaryTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_no_primary_seconds_total",
			Help: "Time each database had no writable primary, counted when a primary is back.",
		}, []string{"database"}),
	}
	m.pool = newPoolVecs(reg)
	m.process = newProcessMetrics(reg)
	m.PeerCancelsSent, m.PeerCancelsReceived = newPeerCancels(reg)
	m.Notify = newNotifyMetrics(reg)
	reg.MustRegister(m.NoPrimaryTotal, &m.topo)
	reg.MustRegister(m.ClientConnections, m.ClientSessions, m.ClientLoginFailure, bytes,
		m.ConnectAttempts, m.ConnectFailures, m.CancelRequests, m.Pins, m.PinnedClients, &poolCollector{pools: pools},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	serverConnsDesc = prometheus.NewDesc("sluice_server_connections",
		"Server connections by pool and state (idle: available in the pool; active: serving a client).",
		[]string{"database", "user", "state"}, nil)
	waitingDesc = prometheus.NewDesc("sluice_pool_waiting_clients",
		"Clients waiting for a server connection.", []string{"database", "user"}, nil)
	closedDesc = prometheus.NewDesc("sluice_server_connections_closed_total",
		"Idle server connections closed by the pool, by reason (stale: idle_timeout or max_lifetime; dead: closed by the server; settings: replaced by one opened with another client's startup parameters).",
		[]string{"database", "user", "reason"}, nil)
	maxSizeDesc = prometheus.NewDesc("sluice_pool_max_size",
		"The pool's max_size: the most server connections it opens.", []string{"database", "user"}, nil)
	activeClientsDesc = prometheus.NewDesc("sluice_pool_active_clients",
		"Logged-in clients of the pool not waiting for a server connection (PgBouncer's cl_active: in transaction mode, idle clients count too).",
		[]string{"database", "user"}, nil)
	timeoutsDesc = prometheus.NewDesc("sluice_pool_borrow_timeouts_total",
		"Clients refused with 53300 because no server connection was free within borrow_timeout.", []string{"database", "user"}, nil)
)

type poolCollector struct{ pools func() []PoolStat }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- serverConnsDesc
	ch <- waitingDesc
	ch <- maxSizeDesc
	ch <- activeClientsDesc
	ch <- closedDesc
	ch <- timeoutsDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	if c.pools == nil {
		return
	}
	for _, p := range c.pools() {
		ch <- prometheus.MustNewConstMetric(serverConnsDesc, prometheus.GaugeValue, float64(p.Idle), p.Database, p.User, "idle")
		ch <- prometheus.MustNewConstMetric(serverConnsDesc, prometheus.GaugeValue, float64(p.Busy), p.Database, p.User, "active")
		ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(p.Waiting), p.Database, p.User)
		ch <- prometheus.MustNewConstMetric(maxSizeDesc, prometheus.GaugeValue, float64(p.MaxSize), p.Database, p.User)
		ch <- prometheus.MustNewConstMetric(activeClientsDesc, prometheus.GaugeValue, float64(p.activeClients()), p.Database, p.User)
		ch <- prometheus.MustNewConstMetric(closedDesc, prometheus.CounterValue, float64(p.Recycled), p.Database, p.User, "stale")
		ch <- prometheus.MustNewConstMetric(closedDesc, prometheus.CounterValue, float64(p.DeadRemoved), p.Database, p.User, "dead")
		ch <- prometheus.MustNewConstMetric(closedDesc, prometheus.CounterValue, float64(p.Replaced), p.Database, p.User, "settings")
		ch <- prometheus.MustNewConstMetric(timeoutsDesc, prometheus.CounterValue, float64(p.Timeouts), p.Database, p.User)
	}
}
