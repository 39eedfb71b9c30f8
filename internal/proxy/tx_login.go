package proxy

import (
	"context"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/txpool"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// txHost is a transaction-pooled client's session as the engine
// (internal/txpool) sees it: txpool.Session. Made once per client at
// login; it holds what proxy knows of the client and txpool does not
// (its pool or read-only route, its cancel key).
type txHost struct {
	txpool.Client // embedded: a client is one allocation
	ss            *session
	entry         *poolEntry   // the (database, user) pool
	route         *readRoute   // read-only client: each attach picks a standby (nil: entry)
	user          *config.User // for the log line at the end
}

// runTx logs a transaction-pooled client in: one server connection
// checks its startup settings and provides the parameters it is greeted
// with, then goes back to the pool; the client is then handed to
// txpool, which serves it until it leaves (see session.then).
func (ss *session) runTx(db *config.Database, u *config.User, set *backend.StartupSet, route *readRoute) {
	s := ss.srv
	cfg := s.state.Load().cfg
	h := &txHost{ss: ss, route: route, user: u}
	if route != nil {
		h.entry = route.primary
	} else {
		h.entry = s.poolFor(db, u)
	}
	// The session's context ends waits for a server connection when the
	// session is terminated (ss.stop); it carries the client's startup
	// parameters (see txpool.Params.Ctx).
	ctx, cancel := context.WithCancel(context.Background())
	h.Init(txpool.Params{Env: s.txEnv, Session: h, Conn: ss.client, Draining: &ss.draining,
		DB: db, Limits: cfg.Limits, Bufs: s.buffers(db.Backend.ReceiveChunkSize),
		Ctx: backend.WithStartup(ctx, set), Cancel: cancel})
	defer func() {
		if ss.then == nil {
			cancel()
		}
	}()
	ss.mu.Lock()
	ss.stop, ss.tx = cancel, h
	terminated := ss.terminated
	ss.mu.Unlock()
	if terminated {
		return
	}
	s.mu.Lock()
	if s.closing {
		ss.draining.Store(true) // Shutdown began while this client logged in
	}
	s.mu.Unlock()
	l, err := h.Client.Acquire()
	if err != nil {
		return
	}
	ss.keyPID = s.nextPID()
	ss.keySecret = s.cancels.add(ss.keyPID, ss)
	greet := greetingFor(l.Conn, ss.keyPID, ss.keySecret)
	l.End(s.log, txpool.LeaseIdle, 'I', false) // only its greeting was needed
	ss.client.SetDeadline(time.Time{})
	ss.loggedIn(h.entry)
	if _, err = ss.client.Write(greet); err != nil {
		h.ended()
		return
	}
	h.Ready()
	ss.then = h.serveThenEnd // see session.then
}

// serveThenEnd is the goroutine that serves a logged-in client (see
// session.then). Its frame and Serve's are small, so that a client's
// stack stays at the minimum (2 kB): the logging at the end is in a call
// of its own. It reports true when the client went on elsewhere: moved
// to a fresh goroutine, or parked (txpool's park.go: Resume starts one
// when the client needs it again); that goroutine then owns the
// session's end.
func (h *txHost) serveThenEnd() (moved bool) {
	switch h.Serve() {
	case txpool.Moved:
		go h.ss.srv.serveThen(h.ss)
		return true
	case txpool.Parked:
		return true // h belongs to the parking table now: touch nothing
	}
	h.ended()
	return false
}

// Resume is txpool.Session's: a parked client's loop runs again on a
// fresh goroutine (the path a moved client takes).
func (h *txHost) Resume() { go h.ss.srv.serveThen(h.ss) }

//go:noinline
func (h *txHost) ended() {
	s, ss := h.ss.srv, h.ss
	h.End()
	s.cancels.remove(ss.keyPID, ss.keySecret)
	s.log.Info("session ended", "user", h.user.Name, "database", h.DB.Name, "remote", ss.remote(),
		"duration", time.Since(ss.start).Round(time.Millisecond), "pool_mode", h.DB.PoolMode)
}

// Borrow is txpool.Session's: the client's pool, or the server its
// read-only route picks now.
func (h *txHost) Borrow(ctx context.Context) (txpool.Home, *backend.Conn, error) {
	h.ss.borrowing.Store(true) // SHOW CLIENTS: waiting for a server connection
	defer h.ss.borrowing.Store(false)
	if h.route != nil {
		e, conn, err := h.route.acquire(ctx)
		if e == nil {
			return nil, conn, err // no pool: keep the interface nil
		}
		return e, conn, err
	}
	conn, err := h.entry.acquire(ctx)
	return h.entry, conn, err
}

func (h *txHost) FailAcquire(err error) { h.ss.failAcquire(h.DB, err) }

// Fail is txpool.Session's; a killed client is told so, whatever
// failed meanwhile (its cancelled context ends a settings sync).
func (h *txHost) Fail(code, msg string) {
	if h.ss.killed.Load() {
		code, msg = wire.CodeAdminShutdown, "terminating connection due to administrator command"
	}
	h.ss.fail(code, msg)
}
func (h *txHost) AttachServer(conn *backend.Conn) { h.ss.attachServer(conn) }
func (h *txHost) DetachServer()                   { h.ss.detachServer() }
func (h *txHost) CancelSent() bool                { return h.ss.cancelSent() }
func (h *txHost) TerminatedBySluice() bool        { return h.ss.isTerminated() }
func (h *txHost) Remote() string                  { return h.ss.remote() }
func (h *txHost) NotePins(pins []string, cause string, serverPID uint32) {
	h.ss.notePins(pins, cause, serverPID)
}

// RefusePins is txpool.Session's: the pool's pin_policy as configured now
// (a RELOAD stores the new database entry in the pool).
func (h *txHost) RefusePins() bool {
	db := h.DB
	if h.entry != nil {
		if cur := h.entry.db.Load(); cur != nil {
			db = cur
		}
	}
	return db.Pool.PinPolicy == config.PinPolicyError
}

// ParkedClients reports how many transaction-pooled clients are parked:
// idle, with no goroutine (txpool's park.go). Tests and measurements
// wait on it.
func (s *Server) ParkedClients() int { return s.txEnv.ParkedClients() }

// SetParkAfter sets how long a transaction-pooled client idles before it
// is parked (default 1 s), which is also how late at most a parked
// client's client_idle_timeout ends it. Tests shorten it.
func (s *Server) SetParkAfter(d time.Duration) { s.txEnv.SetParkAfter(d) }
