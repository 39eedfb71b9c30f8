package proxy

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/metrics"
	"github.com/sluice-proxy/sluice/internal/txpool"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// session is one client connection, from accept to close. Its goroutine
// (serve) owns the client conn and, while attached, the server conn.
type session struct {
	srv    *Server
	client net.Conn
	start  time.Time
	// id identifies the client in SHOW CLIENTS and KILL_CLIENT; issued
	// at accept, never reused while sluice runs.
	id uint64
	// readOnly: the client came in on listen.read_only_address.
	readOnly bool
	// stats, set by loggedIn on the session's goroutine before the
	// greeting, are its pool's metrics; loginTook is how long the login
	// took. end reads both (nil stats: the client never logged in).
	stats     *metrics.PoolMetrics
	loginTook time.Duration

	mu     sync.Mutex // guards the fields below, read by cancel/terminate
	server *backend.Conn
	relay  *relay
	// cancelling counts cancel requests in flight to server; cancelled
	// records that one was sent. PostgreSQL acts on a cancel whenever it
	// arrives, so a connection that was sent one is never reused: a late
	// cancel could otherwise stop the next client's query.
	cancelling sync.WaitGroup
	cancelled  bool
	terminated bool
	// stop ends a wait for a server connection when the session is
	// terminated before it has one.
	stop context.CancelFunc
	// tx is set for transaction and statement pool mode.
	tx *txHost
	// then, when serve sets it, continues the session on a fresh
	// goroutine: a transaction-pooled client idles for hours, and the
	// goroutine that logged it in has grown its stack (SCRAM, decoding)
	// to several times what waiting needs. It ends with end(), unless it
	// returns true: then it moved on to yet another goroutine that ends
	// the session (see Server.serveThen).
	then func() (moved bool)
	// slot and pendingAt are the session's place in Server.slots, guarded
	// by its lock; evicted (guarded by mu) records that the session lost
	// its slot to a newer socket before it logged in.
	slot      slotKind
	pendingAt *list.Element
	evicted   bool
	// draining asks a transaction-pooled client to leave at its next
	// idle point (sluice is shutting down).
	draining atomic.Bool
	// killed: the operator dropped the client (KILL, KILL_CLIENT); it is
	// told so instead of "shutting down".
	killed atomic.Bool
	// borrowing: a transaction-pooled client is waiting for a server
	// connection (SHOW CLIENTS' "waiting", SHOW POOLS' cl_waiting).
	borrowing atomic.Bool

	// info (guarded by mu) and pins are what the console shows of the
	// client (session_info.go).
	info clientInfo
	pins atomic.Pointer[pinRecord]
	// keyPID and keySecret are the cancel key issued to the client
	// (session goroutine's). Here rather than in txHost: the session's
	// size class has room for them, txHost's had not.
	keyPID, keySecret uint32
	// handOffStay: an upgrade's hand-off found the session-mode client
	// cannot move, or failed to move it; it stays on this process.
	handOffStay atomic.Bool
}

// ofDatabase reports whether the session is a client of db ("" = of any
// database sluice serves, not the admin console's).
func (ss *session) ofDatabase(db string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return !ss.info.console && ss.info.database != "" && (db == "" || ss.info.database == db)
}

// kill ends the session at once from outside (KILL, KILL_CLIENT) with
// PostgreSQL's pg_terminate_backend error (57P01 "terminating connection
// due to administrator command"): a session-mode client as terminate
// does, at the next message boundary; a transaction-pooled one is asked
// to leave (txpool.Client.Kill), idle, parked or inside a transaction,
// as drain asks it, so that its own goroutine writes the error: closing
// its socket from here would leave it none. A client still logging in
// is closed, as by terminate.
func (ss *session) kill() {
	ss.killed.Store(true)
	ss.mu.Lock()
	h := ss.tx
	if h != nil && ss.stop != nil {
		ss.stop() // a wait for a server connection ends: failAcquire says why
	}
	ss.mu.Unlock()
	if h != nil {
		h.Kill()
		return
	}
	ss.terminate()
}

func (ss *session) isTerminated() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.terminated
}

// attachServer and detachServer record the server connection a
// transaction-pooled session uses, for cancel requests.
func (ss *session) attachServer(conn *backend.Conn) {
	ss.mu.Lock()
	ss.server, ss.cancelled = conn, false
	ss.mu.Unlock()
}

func (ss *session) detachServer() {
	ss.mu.Lock()
	ss.server = nil
	ss.mu.Unlock()
}

// drain asks a transaction-pooled client to leave as soon as it is idle:
// a past read deadline ends its goroutine's wait, and a parked client
// (txpool's park.go), which has no goroutine, is started again to see it.
func (ss *session) drain() {
	if ss.draining.Swap(true) {
		return
	}
	ss.client.SetReadDeadline(time.Unix(1, 0))
	ss.mu.Lock()
	h := ss.tx
	ss.mu.Unlock()
	if h != nil {
		h.Wake()
	}
}

// sendCancel asks the server to cancel the query this session is running
// now, if it has a server connection; see cancelling.
func (ss *session) sendCancel(why string) {
	ss.mu.Lock()
	conn := ss.server
	if conn == nil {
		ss.mu.Unlock()
		return // includes cancel requests, served whatever the client count
	}
	ss.cancelled = true
	ss.cancelling.Add(1)
	ss.mu.Unlock()
	defer ss.cancelling.Done()
	ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if err := conn.Cancel(ctx); err != nil {
		ss.srv.log.Warn("forwarding a cancel request failed", "why", why, "server", conn.Addr, "pid", conn.PID, "error", err)
	}
}

// terminate ends the session from outside (shutdown). A session in relay
// gets 57P01 at the next message boundary; one still logging in is closed.
func (ss *session) terminate() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.terminated = true
	if ss.stop != nil {
		ss.stop()
	}
	if ss.relay != nil {
		ss.relay.shutdown.Store(true)
		ss.server.Conn.Close()
		return // includes cancel requests, served whatever the client count
	}
	if ss.tx != nil {
		// Withdraws the socket from the parking epoll set while its
		// descriptor is still its own, and starts a parked client's loop,
		// which then finds the socket closed and ends the session.
		ss.tx.BeforeClose()
	}
	ss.client.Close()
}

// remote names the client's address for logs ("unix" for a Unix socket).
func (ss *session) remote() string {
	a := ss.client.RemoteAddr()
	if a == nil || a.Network() == "unix" {
		return "unix"
	}
	return a.String()
}

// fail logs why the session ended and sends a FATAL error to the client.
// The log line comes first, so that by the time the client has the error
// its reason is already in the log (tests read it right after). Lines
// are summarised per address and SQLSTATE (see logRefusal).
func (ss *session) fail(code, msg string, attrs ...any) {
	ss.failAs("", code, msg, attrs...)
}

// failAs is fail for a refused login of a known reason: counted in
// sluice_client_login_failures_total{reason} and summarised by reason.
func (ss *session) failAs(reason, code, msg string, attrs ...any) {
	all := append([]any{"remote", ss.remote(), "sqlstate", code, "reason", msg}, attrs...)
	if reason == "" {
		ss.srv.logRefusal(ss.client.RemoteAddr(), code, slog.LevelInfo, "client refused", all...)
	} else {
		ss.srv.countRefusal(ss.client.RemoteAddr(), reason, slog.LevelInfo, "client refused", all...)
	}
	ss.client.SetWriteDeadline(time.Now().Add(time.Second))
	wire.Write(ss.client, wire.Error(code, "%s", msg))
}

// end releases what a session holds on sluice's side; it runs when the
// session ends, on whichever goroutine ends it (see then).
func (ss *session) end() {
	s := ss.srv
	s.slots.release(ss)
	s.metrics.ClientConnections.Dec()
	if ss.stats != nil {
		ss.stats.ClientOut(time.Since(ss.start) - ss.loginTook)
	}
	if ss.wasEvicted() {
		ss.client.SetWriteDeadline(time.Now().Add(time.Second))
		wire.Write(ss.client, wire.Error(wire.CodeTooManyConnections,
			"too many client connections (limits.max_client_connections): this connection had not logged in and made room for a newer one"))
	}
	ss.client.Close()
}

// loggedIn counts the session as logged in to e's pool, just before its
// greeting is sent: the login's length, and a client of the pool until
// end.
func (ss *session) loggedIn(e *poolEntry) {
	ss.srv.metrics.ClientSessions.Inc()
	ss.loginTook = time.Since(ss.start)
	ss.stats = e.stats
	ss.stats.ClientIn(ss.loginTook)
}

// evict makes the session's next read fail at once: it lost its slot to
// a newer socket (see clientSlots). Its goroutine then sends 53300 and
// ends, without logging (the accept loop has).
func (ss *session) evict() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.evicted = true
	ss.client.SetReadDeadline(time.Unix(1, 0))
}

func (ss *session) wasEvicted() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.evicted
}

func (ss *session) serve() {
	s := ss.srv
	s.metrics.ClientConnections.Inc()
	defer func() {
		if ss.then == nil {
			ss.end()
		} // else the continuation ends the session
	}()
	st := s.state.Load()
	cfg := st.cfg
	// The accept loop set the login deadline (client_login_timeout).
	start, err := ss.readStartup(cfg.Limits.MaxStartupPacket, cfg.TLS)
	if err != nil || start == nil {
		return // includes cancel requests, served on a cancel-only slot too
	}
	if ss.slotIsReserve() {
		ss.failTooMany(cfg)
		return
	}
	user, dbName := start.Get("user"), start.Get("database")
	if dbName == "" {
		dbName = user
	}
	method, ok := ss.admit(cfg, user, dbName)
	if !ok {
		return
	}
	if start.Get("replication") != "" && start.Get("replication") != "false" && start.Get("replication") != "0" {
		ss.failAs(reasonReplication, wire.CodeFeatureNotSupported, "replication connections are not supported by sluice", "user", user)
		return
	}
	if cfg.Admin.ConsoleEnabled() && slices.Contains(config.ConsoleDatabases, dbName) {
		ss.serveConsole(st, user, dbName, method, start) // console_session.go
		return
	}
	db := cfg.Databases[dbName]
	if db == nil {
		ss.failAs(reasonUnknownDatabase, wire.CodeInvalidCatalogName, fmt.Sprintf("database %q does not exist (it is not configured in sluice)", dbName), "user", user)
		return
	}
	ss.mu.Lock()
	ss.info.database = db.Name // for KILL db, also while it authenticates
	ss.mu.Unlock()
	u, err := ss.authenticate(st, cfg.User(user), user, method)
	if err != nil {
		return
	}
	if s.isDisabled(db.Name) { // after authentication, as PostgreSQL checks datallowconn
		ss.refuseDisabled(db.Name)
		return
	}
	if !s.slots.loggedIn(ss) {
		ss.failTooMany(cfg)
		return
	}
	ss.noteLogin(u.Name, dbName, start.Get("application_name"), db.PoolMode, false)
	settings, err := start.Settings()
	if err != nil {
		var pe *frontend.ProtocolError
		errors.As(err, &pe)
		ss.fail(pe.Code, pe.Msg, "user", user)
		return
	}
	route, settings, ok := ss.routeFor(db, u, settings)
	if !ok {
		return
	}
	bs := make([]backend.Setting, len(settings))
	for i, p := range settings {
		bs[i] = backend.Setting{Name: p.Name, Value: p.Value}
	}
	set := backend.NewStartupSet(bs) // once per client: the pool's affinity key
	if db.PoolMode == config.PoolTransaction || db.PoolMode == config.PoolStatement {
		ss.runTx(db, u, set, route)
		return
	}
	ss.run(db, u, set, route)
}

// run attaches a server connection, greets the client and relays. With
// a route (read-only sessions) the server is chosen once, for the
// session.
func (ss *session) run(db *config.Database, u *config.User, set *backend.StartupSet, route *readRoute) {
	s := ss.srv
	var e *poolEntry
	if route == nil {
		e = s.poolFor(db, u)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = backend.WithStartup(ctx, set) // server connections open with the client's parameters
	ss.mu.Lock()
	ss.stop = cancel
	terminated := ss.terminated
	ss.mu.Unlock()
	if terminated {
		return
	}
	var conn *backend.Conn
	var err error
	if route != nil {
		e, conn, err = route.acquire(ctx)
	} else {
		conn, err = e.acquire(ctx)
	}
	if err != nil {
		ss.failAcquire(db, err)
		return
	}
	if err := ss.applyStartup(ctx, conn, set); err != nil {
		var se *backend.ServerError
		if errors.As(err, &se) {
			se.Response.Severity, se.Response.SeverityUnlocalized = "FATAL", "FATAL"
			wire.Write(ss.client, se.Response)
			(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseIdle, 'I', false) // the failed SELECT left it idle and clean
		} else {
			ss.fail(wire.CodeConnectionFailure, "could not prepare server connection: "+err.Error())
			(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseLost, 'I', false)
		}
		return
	}
	r := ss.newRelay(db, e, conn)
	if r == nil {
		(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseIdle, 'I', false) // never attached: no cancel reached it
		return
	}
	pid := s.sessionPID(conn)
	secret := s.cancels.add(pid, ss)
	ss.keyPID, ss.keySecret = pid, secret // an upgrade's hand-off sends them
	greet := greetingFor(conn, pid, secret)
	ss.client.SetDeadline(time.Time{})
	ss.loggedIn(e)
	if _, err := ss.client.Write(greet); err == nil {
		var moved bool
		if conn, r, moved = ss.relayLoop(ctx, db, e, conn, r, set, route); moved {
			s.cancels.remove(pid, secret)
			return
		}
	}
	ss.endRelay(u, db, e, conn, r, pid, secret)
}

// applyStartup gives conn the client's startup parameters when it was not
// opened with them. Acquire with the set in ctx hands out only connections
// opened with it, which need nothing: PostgreSQL applied the parameters
// at startup. This is the fallback should a connection of another set
// ever reach a session: set_config in one round trip (source "session",
// so RESET would not return to them; hence affinity).
func (ss *session) applyStartup(ctx context.Context, conn *backend.Conn, set *backend.StartupSet) error {
	if conn.OpenedWith(set) {
		return nil
	}
	return conn.Apply(ctx, set.Settings)
}

func addCounter(c interface{ Add(float64) }) func(int) {
	return func(n int) { c.Add(float64(n)) }
}

// greetingFor is what PostgreSQL sends after a successful login: the
// client sees the server's parameters and, in session mode, the server's
// real PID (in transaction mode, and in a fleet, one sluice issues),
// always with sluice's own secret.
func greetingFor(conn *backend.Conn, pid, secret uint32) []byte {
	names := make([]string, 0, len(conn.Params))
	for k := range conn.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	msgs := make([]pgproto3.Message, 0, len(names)+3)
	msgs = append(msgs, &pgproto3.AuthenticationOk{})
	for _, k := range names {
		msgs = append(msgs, &pgproto3.ParameterStatus{Name: k, Value: conn.Params[k]})
	}
	sec := []byte{byte(secret >> 24), byte(secret >> 16), byte(secret >> 8), byte(secret)}
	msgs = append(msgs, &pgproto3.BackendKeyData{ProcessID: pid, SecretKey: sec}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	buf, _ := wire.Append(nil, msgs...)
	return buf
}

// cancelSent reports whether a cancel request was sent through the
// session's current server connection, after waiting for any still in
// flight, and clears the record. The caller has already detached the
// connection (ss.server nil), so no new cancel can reach it.
func (ss *session) cancelSent() bool {
	ss.mu.Lock()
	cancelled := ss.cancelled
	ss.cancelled = false
	ss.mu.Unlock()
	ss.cancelling.Wait()
	return cancelled
}
