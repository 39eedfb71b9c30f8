package txpool

import (
	"context"
	"log/slog"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/metrics"
	"github.com/sluice-proxy/sluice/internal/notify"
)

// Env is what every transaction-pooled client of one server shares; one
// per proxy.Server (NewEnv), read-only once the server started except for
// its sweeps, whose goroutine the server runs (RunSweeps).
type Env struct {
	Log     *slog.Logger
	Metrics *metrics.Metrics
	// AfterForward, if set, runs in a client's goroutine after it wrote
	// a chunk to the server, before it checks whether to wake the
	// attachment; BeforeDetachCheck, if set, runs in an attachment's
	// goroutine after it relayed a ReadyForQuery, before it checks
	// whether to detach. Tests use them to force interleavings.
	AfterForward      func(Probe)
	BeforeDetachCheck func(Probe)
	// ReaderStarted, if set, runs in a client's goroutine when it hands
	// its attachment to a reader goroutine (tests count the hand-overs).
	ReaderStarted func(Probe)
	// InlineRead, if set, runs in a client's goroutine when it begins to
	// read an answer itself (tests count the inline reads).
	InlineRead func(Probe)
	// NotificationsDelivered, if set, runs in a client's goroutine after
	// it took its notifications at the top of its loop; lateWake sets
	// the past read deadline notifyWake would (tests force a wake-up's
	// deadline to land after its flag was taken).
	NotificationsDelivered func(lateWake func())

	sweeps sweeps // sweep.go
}

// NewEnv returns the Env of one server.
func NewEnv(log *slog.Logger, m *metrics.Metrics) *Env {
	e := &Env{Log: log, Metrics: m}
	e.sweeps.init()
	return e
}

// RunSweeps runs the inline watch and the hop sweep (sweep.go) until ctx
// ends, and the waiter of parked clients (park.go) with them; the server
// runs it on a goroutine of its own from Start, so that Shutdown (which
// ends ctx once every session ended) stops both. Until it opened the
// epoll set, and after it closed it, no client parks.
func (e *Env) RunSweeps(ctx context.Context) {
	if err := e.sweeps.park.open(); err != nil && parkSupported {
		e.Log.Warn("idle transaction-pooled clients cannot be parked; each keeps a goroutine", "error", err)
	}
	defer e.sweeps.park.close()
	e.sweeps.run(ctx)
}

// HopsPending reports how many clients wait for the hop sweep to ask
// them to park or move to a fresh goroutine (a measurement waits for
// none).
func (e *Env) HopsPending() int {
	e.sweeps.hopMu.Lock()
	defer e.sweeps.hopMu.Unlock()
	return len(e.sweeps.grown)
}

// Session is what the engine needs from one client's session (proxy's
// session implements it, through a small adapter per client). It is an
// interface, not a struct of funcs, so that an idle client pays for one
// interface value rather than a closure per method.
type Session interface {
	// Borrow borrows a server connection opened with the client's
	// startup parameters (carried by ctx): from its pool, or, for a
	// read-only client, from the server its route picks now.
	Borrow(ctx context.Context) (Home, *backend.Conn, error)
	// FailAcquire tells the client why no connection could be had.
	FailAcquire(err error)
	// Fail sends the client a FATAL error with code and msg, and logs it.
	Fail(code, msg string)
	// AttachServer and DetachServer record the connection the client
	// holds, for cancel requests; CancelSent reports (after waiting for
	// any in flight) whether one was sent through it since AttachServer.
	AttachServer(*backend.Conn)
	DetachServer()
	CancelSent() bool
	// TerminatedBySluice reports that sluice ended the session from outside
	// (shutdown timeout).
	TerminatedBySluice() bool
	// Remote names the client's address for logs.
	Remote() string
	// NotePins is told the client's pins whenever they are set (the
	// console's SHOW PINS), with the beginning of the statement that made
	// the newest one (txcore.Client.PinCause) and the server connection's
	// process ID.
	NotePins(pins []string, cause string, serverPID uint32)
	// RefusePins reports whether the client's pool refuses statements
	// that would pin (pool.pin_policy error), as configured now: asked
	// only when the lexer flags a statement, so a RELOAD applies to
	// connected clients.
	RefusePins() bool
	// Notifier is the LISTEN fan-out of the client's (database, user)
	// pool (nil: none, LISTEN pins), created on first use.
	Notifier() *notify.Hub
	// Resume runs the client's loop (Serve) again on a fresh goroutine,
	// which then owns the client and the session's end, after it was
	// parked (park.go); Serve returned Parked on the old one.
	Resume()
}

// Probe lets a test hook look at an attachment's state.
type Probe struct{ a *attachment }

// FireWatch does to the attachment what the inline watch does to an
// answer awaited for a full tick, if the attachment is being read inline
// (tests force the watch's race with a detach with it).
// It reports whether the attachment was being read inline.
func (p Probe) FireWatch() bool {
	w := &p.a.client.env.sweeps
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	if _, ok := w.inline[p.a]; !ok {
		return false
	}
	delete(w.inline, p.a)
	p.a.fireWatch()
	return true
}

// Status is the transaction status of the last ReadyForQuery relayed.
func (p Probe) Status() byte {
	p.a.mu.Lock()
	defer p.a.mu.Unlock()
	return p.a.Status
}

// Answered reports whether every request sent was answered, or the
// attachment ended.
func (p Probe) Answered() bool {
	p.a.mu.Lock()
	defer p.a.mu.Unlock()
	return p.a.Asks == p.a.GotZ || p.a.detached
}

// Writing reports whether the client goroutine is between taking the
// attachment's lock and finishing its write, and whether it asked the
// attachment's goroutine to look at its flags (a wake-up pending).
func (p Probe) Writing() (inflight, woken bool) {
	p.a.mu.Lock()
	defer p.a.mu.Unlock()
	return p.a.inflight, p.a.wake
}
