package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Classic bucket bounds, for scrapers without native histograms. Waits
// and round trips are mostly sub-millisecond; a wait of borrow_timeout
// (5 s by default) must still land in a bucket of its own.
var (
	latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	sessionBuckets = []float64{0.01, 0.1, 1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}
)

// histogramOpts are a native histogram (10% wide buckets, at most 160 of
// them, reset at most hourly when that limit is hit) with classic
// buckets as the fallback for scrapes in the text format.
func histogramOpts(name, help string, buckets []float64) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets,
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 160,
		NativeHistogramMinResetDuration: time.Hour}
}

// poolVecs are the per-pool metric families; PoolMetrics holds one
// pool's children.
type poolVecs struct {
	borrowWait, transaction, query, connect, login, session *prometheus.HistogramVec
	transactions, queries                                   *prometheus.CounterVec
}

func newPoolVecs(reg *prometheus.Registry) poolVecs {
	labels := []string{"database", "user"}
	v := poolVecs{
		borrowWait: prometheus.NewHistogramVec(histogramOpts("sluice_pool_wait_seconds",
			"Time a client waited for a server connection per borrow (queue, waiting for a primary and dialling; 0 when an idle one was free), failed borrows included.",
			latencyBuckets), labels),
		transaction: prometheus.NewHistogramVec(histogramOpts("sluice_transaction_duration_seconds",
			"Transaction mode: how long a client held a server connection, attach to detach (one transaction; a pinned client's whole pin).",
			latencyBuckets), labels),
		query: prometheus.NewHistogramVec(histogramOpts("sluice_query_duration_seconds",
			"Session mode: from a request (Query, Sync, FunctionCall) sent while the server owed nothing to the ReadyForQuery that left it owing nothing (a query's round trip, a pipeline's whole).",
			latencyBuckets), labels),
		connect: prometheus.NewHistogramVec(histogramOpts("sluice_server_connect_duration_seconds",
			"Time to open a server connection (TCP, TLS, login; retries and waiting for a primary included), successful ones.",
			latencyBuckets), labels),
		login: prometheus.NewHistogramVec(histogramOpts("sluice_client_login_duration_seconds",
			"Time from accepting a client to sending its greeting (startup, TLS, authentication, first server connection), logins that succeeded.",
			latencyBuckets), labels),
		session: prometheus.NewHistogramVec(histogramOpts("sluice_client_session_duration_seconds",
			"How long logged-in client sessions lasted, login to close.",
			sessionBuckets), labels),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_pool_transactions_total",
			Help: "Transactions served by the pool: ReadyForQuery messages with status idle (an explicit transaction's end or an autocommit statement), as PgBouncer's total_xact_count."}, labels),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_pool_queries_total",
			Help: "Requests answered by the pool's servers: ReadyForQuery messages relayed (one per simple query, extended-protocol Sync or function call), as PgBouncer's total_query_count."}, labels),
	}
	reg.MustRegister(v.borrowWait, v.transaction, v.query, v.connect, v.login, v.session, v.transactions, v.queries)
	return v
}

// PoolMetrics are one (database, user) pool's metric children, resolved
// once when the pool is created: observing through them takes no lock
// and allocates nothing (WithLabelValues on the hot path would). A nil
// *PoolMetrics observes nothing (unit tests build pools without
// metrics). Its methods may be called from any goroutine.
type PoolMetrics struct {
	borrowWait, transaction, query, connect, login, session prometheus.Observer
	transactions, queries                                   prometheus.Counter
	// clients counts the pool's logged-in clients (ClientIn, ClientOut),
	// read at scrape time.
	clients atomic.Int64
}

// Pool returns the children for (database, user); call it once per pool.
func (m *Metrics) Pool(database, user string) *PoolMetrics {
	v := &m.pool
	return &PoolMetrics{
		borrowWait:   v.borrowWait.WithLabelValues(database, user),
		transaction:  v.transaction.WithLabelValues(database, user),
		query:        v.query.WithLabelValues(database, user),
		connect:      v.connect.WithLabelValues(database, user),
		login:        v.login.WithLabelValues(database, user),
		session:      v.session.WithLabelValues(database, user),
		transactions: v.transactions.WithLabelValues(database, user),
		queries:      v.queries.WithLabelValues(database, user),
	}
}

// Ready counts one ReadyForQuery relayed to a client, with its
// transaction status: a query, and a transaction when it is 'I'.
func (p *PoolMetrics) Ready(status byte) {
	if p == nil {
		return
	}
	p.queries.Inc()
	if status == 'I' {
		p.transactions.Inc()
	}
}

// Answered counts ReadyForQuery messages relayed: queries, and
// transactions (those with status 'I'), several at once.
func (p *PoolMetrics) Answered(queries, transactions int) {
	if p == nil {
		return
	}
	p.queries.Add(float64(queries))
	if transactions > 0 {
		p.transactions.Add(float64(transactions))
	}
}

// BorrowWaited observes one borrow's wait.
func (p *PoolMetrics) BorrowWaited(d time.Duration) {
	if p != nil {
		p.borrowWait.Observe(d.Seconds())
	}
}

// TransactionHeld observes one transaction-mode attachment's life.
func (p *PoolMetrics) TransactionHeld(d time.Duration) {
	if p != nil {
		p.transaction.Observe(d.Seconds())
	}
}

// QueryAnswered observes one session-mode round trip.
func (p *PoolMetrics) QueryAnswered(d time.Duration) {
	if p != nil {
		p.query.Observe(d.Seconds())
	}
}

// Connected observes one successful server connection's opening.
func (p *PoolMetrics) Connected(d time.Duration) {
	if p != nil {
		p.connect.Observe(d.Seconds())
	}
}

// ClientIn records a client that logged in after login; ClientOut, with
// the session's length since then, its close. Every ClientIn has one
// ClientOut.
func (p *PoolMetrics) ClientIn(login time.Duration) {
	if p != nil {
		p.clients.Add(1)
		p.login.Observe(login.Seconds())
	}
}

// ClientMovedIn counts a client another sluice process handed over (the
// upgrade hand-off) as a client of the pool, without a login.
func (p *PoolMetrics) ClientMovedIn() {
	if p != nil {
		p.clients.Add(1)
	}
}

// ClientOut: see ClientIn.
func (p *PoolMetrics) ClientOut(session time.Duration) {
	if p != nil {
		p.clients.Add(-1)
		p.session.Observe(session.Seconds())
	}
}

// Clients is the number of logged-in clients now.
func (p *PoolMetrics) Clients() int {
	if p == nil {
		return 0
	}
	return int(p.clients.Load())
}

// PoolTotals are a pool's counts and summed times since sluice started,
// read back from its metrics for the console's SHOW STATS (which thus
// shows what /metrics shows, in both pool modes).
type PoolTotals struct {
	Queries, Transactions uint64
	Waits                 uint64 // borrows of a server connection
	WaitTime              time.Duration
	XactTime              time.Duration // transaction mode: attach to detach
	QueryTime             time.Duration // session mode: request to ReadyForQuery
}

// Totals reads the pool's totals. It takes the metrics' own locks, like
// a scrape: for the console, never for the path of a query.
func (p *PoolMetrics) Totals() PoolTotals {
	if p == nil {
		return PoolTotals{}
	}
	waits, wait := histogramTotals(p.borrowWait)
	_, xact := histogramTotals(p.transaction)
	_, query := histogramTotals(p.query)
	return PoolTotals{Queries: counterTotal(p.queries), Transactions: counterTotal(p.transactions),
		Waits: waits, WaitTime: wait, XactTime: xact, QueryTime: query}
}

func counterTotal(c prometheus.Counter) uint64 {
	var m dto.Metric
	if c.Write(&m) != nil || m.Counter == nil {
		return 0
	}
	return uint64(m.Counter.GetValue())
}

func histogramTotals(o prometheus.Observer) (count uint64, sum time.Duration) {
	h, ok := o.(prometheus.Metric)
	if !ok {
		return 0, 0
	}
	var m dto.Metric
	if h.Write(&m) != nil || m.Histogram == nil {
		return 0, 0
	}
	return m.Histogram.GetSampleCount(), time.Duration(m.Histogram.GetSampleSum() * float64(time.Second))
}
