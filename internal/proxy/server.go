// Package proxy accepts PostgreSQL clients and relays their sessions to
// server connections taken from per-(database, user) pools.
//
// Ownership: Server owns the listeners, the pools and one goroutine per
// accept loop; each client connection is owned by one session goroutine,
// which runs the client-to-server loop itself and starts exactly one more
// goroutine (server-to-client) while a server connection is attached.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-proxy/sluice/internal/access"
	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/metrics"
	"github.com/sluice-proxy/sluice/internal/refusal"
	"github.com/sluice-proxy/sluice/internal/txpool"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Server is one running sluice proxy.
type Server struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	state   atomic.Pointer[state]
	cancels cancelRegistry
	// fleet is set when this instance is one of several (SetCancelPeers).
	fleet atomic.Pointer[fleetCancel]
	// predecessor forwards cancels for keys of clients left on the
	// process this one took over from (SetPredecessorCancel).
	predecessor atomic.Pointer[PredecessorCancel]
	// limiter counts failed logins per client address; it lives across
	// reloads, which only change its rates.
	limiter *access.Limiter

	mu        sync.Mutex
	pools     map[poolKey]*poolEntry
	topos     map[string]*dbTopology // by database, for those with several hosts
	bufs      map[int]*wire.Buffers
	sessions  map[*session]struct{}
	listeners []net.Listener

	// failoverFleet, in a fleet, gives each database's failover
	// election (fleet_failover.go); under mu.
	failoverFleet FailoverFleet

	// roListener is listen.read_only_address (nil when unset): its
	// sessions are read-only, served by standbys (readonly.go).
	roListener   net.Listener
	closing      bool
	notifyClosed bool // closeNotifiers ran: no new LISTEN fan-out (tx_notify.go)
	// ctl is the operator's state of the databases (control.go).
	ctl controlState
	// gates are the databases' max_db_connections (db_gates.go).
	gates dbGates

	// slots counts open client sockets against max_client_connections,
	// from accept on; refusals summarises the log lines of refused clients.
	slots    clientSlots
	refusals *refusal.Summariser
	pids     atomic.Uint32  // process IDs issued to transaction-pooled clients
	sessWG   sync.WaitGroup // session goroutines
	bgWG     sync.WaitGroup // pool fillers, sweeps, refusal summaries
	// acceptWG counts the accept loops, which StopAccepting waits for
	// (listeners.go); inherited are listening sockets taken over from
	// the process this one upgrades (Inherit), until Start uses them.
	acceptWG  sync.WaitGroup
	inherited []ListenerFile
	bgCtx     context.Context
	bgCancel  context.CancelFunc
	// sweepsStop ends the transaction-mode sweeps (txpool.Env.RunSweeps),
	// after the sessions: a client reading an answer inline needs the
	// inline watch until it ends.
	sweepsCtx  context.Context
	sweepsStop context.CancelFunc

	// started is when New ran; op is what the console's RELOAD and
	// SHUTDOWN call (operator.go).
	started time.Time
	op      atomic.Pointer[Operator]

	// txEnv is what every transaction-pooled client shares (its test
	// hooks may be set before Start).
	txEnv *txpool.Env
	// handOff is the upgrade hand-off of session-mode clients in
	// progress (session_handoff.go).
	handOff handOffRun
}

// New prepares a server for cfg; Start makes it listen.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{
		log:      log,
		pools:    make(map[poolKey]*poolEntry),
		bufs:     make(map[int]*wire.Buffers),
		sessions: make(map[*session]struct{}),
		refusals: refusal.New(0, 0),
		started:  time.Now(),
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.sweepsCtx, s.sweepsStop = context.WithCancel(context.Background())
	s.metrics = metrics.New(s.PoolStats)
	s.txEnv = txpool.NewEnv(log, s.metrics)
	s.metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_settings_round_trips_total",
		Help: "Round trips spent setting a client's parameters on a server connection opened with other ones (process-wide).",
	}, func() float64 { return float64(backend.SettingsRoundTrips()) }))
	s.metrics.SetTopology(func() []metrics.HostStat { h, _ := s.topologyStats(); return h },
		func() []metrics.DatabaseStat { _, d := s.topologyStats(); return d })
	if err := checkTLS(cfg, log); err != nil {
		return nil, err
	}
	st, err := newState(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	s.initGates(cfg)
	s.limiter = access.NewLimiter(cfg.Limits.AuthFailuresPerMinute, cfg.Limits.AuthFailureBurst, 0)
	return s, nil
}

// checkTLS loads the client-side certificate once so that a bad file stops
// start-up (or a reload) with a clear error instead of failing handshakes.
func checkTLS(cfg *config.Config, log *slog.Logger) error {
	if cfg.TLS.Mode == config.TLSDisable {
		return nil
	}
	if err := frontend.SharedTLS(cfg.TLS, log).Err(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

// Metrics returns the server's metrics (for the admin endpoint).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Start binds the listeners and starts accepting clients, and begins
// filling every configured pool to min_size in the background (so sluice
// comes up even while PostgreSQL is down).
func (s *Server) Start() error {
	cfg := s.state.Load().cfg
	defer s.closeInherited() // those the configuration no longer names
	tcp, err := s.listen(RoleAddress, "tcp", cfg.Listen.Address)
	if err != nil {
		return fmt.Errorf("listen.address: %w", err)
	}
	s.listeners = append(s.listeners, tcp)
	if cfg.Listen.SocketDir != "" {
		port := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
		path := filepath.Join(cfg.Listen.SocketDir, ".s.PGSQL."+port)
		ul, err := s.listen(RoleSocket, "unix", path)
		if err != nil {
			tcp.Close()
			return fmt.Errorf("listen.socket_dir: %w", err)
		}
		s.listeners = append(s.listeners, ul)
	}
	if ro := cfg.Listen.ReadOnlyAddress; ro != "" {
		rl, err := s.listen(RoleReadOnly, "tcp", ro)
		if err != nil {
			for _, l := range s.listeners {
				l.Close()
			}
			s.listeners = nil
			return fmt.Errorf("listen.read_only_address: %w", err)
		}
		s.roListener = rl
	}
	s.bgWG.Add(1)
	go s.flushRefusals()
	s.bgWG.Add(1)
	go func() { defer s.bgWG.Done(); s.txEnv.RunSweeps(s.sweepsCtx) }()
	for _, l := range s.listeners {
		s.log.Info("listening", "address", l.Addr().String())
		s.acceptWG.Add(1)
		go s.acceptLoop(l, false)
	}
	if s.roListener != nil {
		s.log.Info("listening for read-only sessions", "address", s.roListener.Addr().String())
		s.acceptWG.Add(1)
		go s.acceptLoop(s.roListener, true)
	}
	for _, db := range cfg.Databases {
		s.topologyFor(db) // watch every server of databases with several hosts from the start
	}
	s.fillPools()
	return nil
}

// Addr is the TCP listener's address.
func (s *Server) Addr() net.Addr { return s.listeners[0].Addr() }

// SocketPath is the Unix socket's path, or "".
func (s *Server) SocketPath() string {
	if len(s.listeners) < 2 {
		return ""
	}
	return s.listeners[1].Addr().String()
}

func removeStaleSocket(path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close() // somebody is serving it; Listen will report the clash
		return
	}
	os.Remove(path)
}

// acceptLoop serves one listener; readOnly marks listen.read_only_address.
// It never blocks on a client: a socket beyond max_client_connections is
// answered and closed right here (see clientSlots), and an accept error
// (out of descriptors) costs a short pause and one log line per interval.
func (s *Server) acceptLoop(l net.Listener, readOnly bool) {
	defer s.acceptWG.Done()
	var pause acceptBackoff
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.logRefusal(l.Addr(), reasonAcceptError, slog.LevelError, "accept failed; pausing briefly (further failures are summarised)",
				"address", l.Addr().String(), "error", err)
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				if victim := s.slots.evictForDescriptor(); victim != nil {
					s.countRefusal(victim.client.RemoteAddr(), reasonEvicted, slog.LevelInfo,
						"closing a client that had not logged in yet: out of descriptors (the open files limit is below max_client_connections)",
						"remote", victim.remote())
				}
			}
			if !pause.wait(s.bgCtx) {
				return
			}
			continue
		}
		pause.reset()
		cfg := s.state.Load().cfg
		nc = wire.NewSocket(nc) // raw syscalls on the relay's hot path
		nc.SetDeadline(time.Now().Add(cfg.Limits.ClientLoginTimeout.D()))
		sess := &session{srv: s, client: nc, start: time.Now(), readOnly: readOnly, id: sessionIDs.Add(1)}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			wire.Write(nc, wire.Error(wire.CodeAdminShutdown, "sluice is shutting down"))
			nc.Close()
			continue
		}
		evicted, ok := s.slots.admit(sess, cfg.Limits.MaxClientConnections)
		if !ok {
			s.mu.Unlock()
			s.refuseAtOnce(nc, cfg.Limits.MaxClientConnections)
			continue
		}
		s.sessions[sess] = struct{}{}
		s.sessWG.Add(1)
		s.mu.Unlock()
		if evicted != nil {
			s.countRefusal(evicted.client.RemoteAddr(), reasonEvicted, slog.LevelInfo,
				"closing a client that had not logged in yet: max_client_connections reached and a new client came",
				"remote", evicted.remote(), "max_client_connections", cfg.Limits.MaxClientConnections)
		}
		go func() {
			sess.serve()
			if sess.then != nil {
				go s.serveThen(sess)
				return
			}
			s.sessionDone(sess)
		}()
	}
}

// refuseAtOnce answers a socket beyond max_client_connections (and its
// cancel reserve) with 53300 and closes it, on the accept loop: the
// message fits a fresh socket's send buffer, so the write does not wait.
func (s *Server) refuseAtOnce(nc net.Conn, limit int) {
	msg := fmt.Sprintf("too many client connections (limits.max_client_connections = %d)", limit)
	s.countRefusal(nc.RemoteAddr(), reasonTooManyConnections, slog.LevelInfo, "client refused",
		"remote", nc.RemoteAddr().String(), "sqlstate", wire.CodeTooManyConnections, "reason", msg)
	nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	wire.Write(nc, wire.Error(wire.CodeTooManyConnections, "%s", msg))
	nc.Close()
}

// serveThen runs a session's continuation (session.then) on the calling
// goroutine and ends the session after it, unless the continuation moved
// on to another goroutine, which then ends it.
func (s *Server) serveThen(sess *session) {
	if sess.then() {
		return
	}
	sess.end()
	s.sessionDone(sess)
}

// sessionDone forgets an ended session.
func (s *Server) sessionDone(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.sessWG.Done()
}

// buffers returns the shared buffer pool for one chunk size.
func (s *Server) buffers(size int) *wire.Buffers {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bufs[size]
	if b == nil {
		b = wire.NewBuffers(size)
		s.bufs[size] = b
	}
	return b
}

// CloseListeners stops accepting clients for good (the first step of a
// shutdown; SHUTDOWN WAIT_FOR_CLIENTS then waits for the clients to
// leave, WaitClientsGone, before Shutdown): the listening sockets are
// closed, a Unix socket's file removed. Clients logged in go on.
func (s *Server) CloseListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for _, l := range s.listeners {
		l.Close()
	}
	if s.roListener != nil {
		s.roListener.Close()
	}
}

// Shutdown stops accepting clients, lets sessions finish until ctx is
// done, then ends the rest with SQLSTATE 57P01 and closes every pool.
func (s *Server) Shutdown(ctx context.Context) {
	s.CloseListeners()
	s.bgCancel()
	s.mu.Lock()
	for sess := range s.sessions { // transaction-pooled clients leave when idle
		if sess.isTx() || sess.isConsole() {
			sess.drain()
		}
	}
	s.failHeldLocked() // clients a pause holds could never finish
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.sessWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		n := len(s.sessions)
		for sess := range s.sessions {
			sess.terminate()
		}
		s.mu.Unlock()
		s.log.Warn("shutdown timeout reached: terminating sessions", "sessions", n)
		<-done
	}
	s.sweepsStop()
	s.acceptWG.Wait()
	s.bgWG.Wait()
	s.closeNotifiers() // their clients are gone: each listener has stopped or stops now
	for _, p := range s.readPools() {
		p.pool.Close()
	}
	s.mu.Lock()
	for _, p := range s.pools {
		p.pool.Close()
	}
	s.mu.Unlock()
}
