package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// txClient is a transaction-pooled client: the session state that
// follows it from server connection to server connection, and its
// clientToServer loop (serve, run by the session goroutine). While no
// transaction runs it holds no server connection and no buffer.
type txClient struct {
	// Client is the pure state: statements, settings, pins, and the
	// rewriting of what the client sends (the framer's sink).
	txcore.Client
	ss         *session
	entry      *poolEntry // the pool of the current or last server connection
	route      *readRoute // read-only client: each attach picks a standby (nil: entry's primary)
	db         *config.Database
	idleTx     time.Duration
	clientIdle time.Duration
	bufs       *wire.Buffers
	bytesUp    prometheus.Counter
	bytesDown  prometheus.Counter

	up     wire.Framer
	att    *attachment // the current or last attachment
	poll   *wire.Poller
	ctx    context.Context // see runTx
	cancel context.CancelFunc
	user   string // for the log line at the end
	pid    uint32 // issued to the client (cancel key with secret)
	secret uint32
	// deadlineSet records that a client read deadline may be armed
	// (guarded like armClientDeadline's callers).
	deadlineSet bool
}

var txClientIDs atomic.Uint64

// errFatal ends a session whose client was already told why.
var errFatal = errors.New("session ended")

var outBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

// runTx logs a transaction-pooled client in: one server connection
// checks its startup settings and provides the parameters it is greeted
// with, then goes back to the pool; the client is served until it leaves.
func (ss *session) runTx(db *config.Database, u *config.User, set *backend.StartupSet, route *readRoute) {
	s := ss.srv
	cfg := s.state.Load().cfg
	var e *poolEntry
	if route != nil {
		e = route.primary
	} else {
		e = s.poolFor(db, u)
	}
	c := &txClient{Client: txcore.Client{ID: txClientIDs.Add(1), PerStatement: db.PoolMode == config.PoolStatement,
		MaxStatements: db.Pool.MaxPreparedStatements, ServerName: statementName, Want: map[string]string{}},
		ss: ss, entry: e, route: route, db: db,
		idleTx: cfg.Limits.IdleTransactionTimeout.D(), clientIdle: cfg.Limits.ClientIdleTimeout.D(),
		bufs: s.buffers(db.Backend.ReceiveChunkSize), bytesUp: s.metrics.BytesClientToSrv,
		bytesDown: s.metrics.BytesSrvToClient, up: wire.Framer{MaxLen: uint32(cfg.Limits.MaxMessageSize)}}
	// The session's context ends waits for a server connection when the
	// session is terminated (ss.stop); it lives as long as the client. It
	// carries the client's startup parameters: every attach takes a
	// connection opened with them (settings affinity), so want holds only
	// what the client SET since (source "session"), and RESET returns to
	// the client's startup values as on a direct connection.
	ctx, cancel := context.WithCancel(context.Background())
	c.ctx, c.cancel = backend.WithStartup(ctx, set), cancel
	ctx = c.ctx
	defer func() {
		if ss.then == nil {
			cancel()
		}
	}()
	ss.mu.Lock()
	ss.stop, ss.tx = cancel, c
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
	conn, err := c.acquire(ctx)
	if err != nil {
		return
	}
	pid := s.nextPID()
	secret := s.cancels.add(pid, ss)
	greet := greetingFor(conn, pid, secret)
	(&lease{c.entry, conn}).end(s.log, leaseIdle, 'I', false) // only its greeting was needed
	ss.client.SetDeadline(time.Time{})
	s.metrics.ClientSessions.Inc()
	if _, err = ss.client.Write(greet); err != nil {
		c.ended(u.Name, pid, secret)
		return
	}
	c.user, c.pid, c.secret = u.Name, pid, secret
	// Made here, not on the serving goroutine: an allocation there can
	// take the slow path and grow the goroutine's stack for good.
	c.poll = wire.NewPoller(ss.client)
	ss.then = c.serveThenEnd // see session.then
}

// serveThenEnd is the goroutine that serves a logged-in client (see
// session.then). Its frame and serve's are small, so that an idle
// client's stack stays at the minimum (2 kB): the logging at the end is
// in a call of its own. It reports true when serve moved the client to a
// fresh goroutine, which then owns the session's end.
func (c *txClient) serveThenEnd() (moved bool) {
	if c.serve() {
		go c.ss.srv.serveThen(c.ss)
		return true
	}
	c.ended(c.user, c.pid, c.secret)
	return false
}

//go:noinline
func (c *txClient) ended(user string, pid, secret uint32) {
	s, ss := c.ss.srv, c.ss
	c.cancel()
	s.cancels.remove(pid, secret)
	c.setPins(nil)
	s.log.Info("session ended", "user", user, "database", c.db.Name, "remote", ss.remote(),
		"duration", time.Since(ss.start).Round(time.Millisecond), "pool_mode", c.db.PoolMode)
}

// acquire takes a server connection and gives it the client's settings;
// on failure the client has been told why. A read-only client's route
// picks the server (and so c.entry) anew each time.
func (c *txClient) acquire(ctx context.Context) (*backend.Conn, error) {
	ss, e := c.ss, c.entry
	var conn *backend.Conn
	var err error
	if c.route != nil {
		e, conn, err = c.route.acquire(ctx)
		c.entry = e
	} else {
		conn, err = e.acquire(ctx)
	}
	if err != nil {
		ss.failAcquire(c.db, err)
		return nil, errFatal
	}
	if err := conn.SyncSettings(ctx, c.Want, c.MaxStatements); err != nil {
		var se *backend.ServerError
		if errors.As(err, &se) {
			se.Response.Severity, se.Response.SeverityUnlocalized = "FATAL", "FATAL"
			ss.client.SetWriteDeadline(time.Now().Add(time.Second))
			wire.Write(ss.client, se.Response)
			(&lease{e, conn}).end(ss.srv.log, leaseIdle, 'I', false) // the failed statement left it idle and clean
		} else {
			ss.fail(wire.CodeConnectionFailure, "could not prepare server connection: "+err.Error())
			(&lease{e, conn}).end(ss.srv.log, leaseLost, 'I', false)
		}
		return nil, errFatal
	}
	return conn, nil
}

// attach returns the live attachment, waiting for the last one to end
// and attaching a server connection when there is none.
func (c *txClient) attach() (*attachment, error) {
	if a, err := c.liveAttachment(); a != nil || err != nil {
		return a, err
	}
	ss := c.ss
	if ss.draining.Load() {
		return nil, errDraining
	}
	conn, err := c.acquire(c.ctx)
	if err != nil {
		return nil, err
	}
	a := newAttachment(ss, c, c.entry, conn)
	ss.attachServer(conn)
	c.att = a
	go a.run()
	return a, nil
}

// liveAttachment returns the client's attachment while it is live. An
// ended one is waited for and forgotten (nil, nil), or ends the session
// when it ended fatally (errFatal: the client was told why).
func (c *txClient) liveAttachment() (*attachment, error) {
	a := c.att
	if a == nil {
		return nil, nil
	}
	a.mu.Lock()
	live := !a.detached
	a.mu.Unlock()
	if live {
		return a, nil
	}
	<-a.done
	if a.fatal {
		return nil, errFatal
	}
	c.att = nil
	return nil, nil
}

var errDraining = errors.New("sluice is shutting down")

// serve is the clientToServer loop. It returns true, asking to go on on a
// fresh goroutine, when a round of forwarding grew the goroutine's stack
// (acquiring a connection, waiting for one, syncing settings run deep):
// a stack that grew once never shrinks back below 4 kB while the
// goroutine idles (the GC halves only stacks using under a quarter,
// counting 800 bytes of guard), and for 10,000 idle clients that is
// 20 MB. The move happens after the client's bytes were written, off
// the path of its query, and only when the stack was actually moved.
func (c *txClient) serve() (moved bool) {
	var mark byte
	at := uintptr(unsafe.Pointer(&mark)) // changes when the runtime moves the stack
	for {
		c.armIdle()
		err := c.poll.Wait()
		if err == wire.ErrNoRawConn {
			err = nil
		}
		if err == nil {
			err = c.pumpUp()
		}
		switch {
		case err == nil:
			if uintptr(unsafe.Pointer(&mark)) != at {
				return true
			}
			continue
		case isTimeout(err):
			if c.onTimeout() {
				continue
			}
		case errors.Is(err, errFatal):
		case errors.Is(err, errDraining):
			c.leave(wire.Error(wire.CodeAdminShutdown, "terminating connection because sluice is shutting down"))
		default:
			c.leave(messageRefusal(err)) // nil: Terminate, end of file, or a broken client connection
		}
		return
	}
}

// pumpUp reads and forwards client bytes until a read would block.
func (c *txClient) pumpUp() error {
	bp := c.bufs.Get()
	defer c.bufs.Put(bp)
	buf := *bp
	for {
		n, err := c.ss.client.Read(buf)
		if n > 0 {
			if ferr := c.forward(buf[:n]); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return err
		}
		if n < len(buf) {
			return nil
		}
	}
}

// forward processes one chunk of client bytes under the attachment's
// lock and writes the result to the server outside it.
func (c *txClient) forward(chunk []byte) error {
	if c.up.AtBoundary() && len(chunk) == 5 && chunk[0] == 'X' && !c.attached() {
		c.Terminated = true
		return txcore.ErrTerminated
	}
	if c.answerParseLocally(chunk) {
		return nil
	}
	for {
		a, err := c.attach()
		if err != nil {
			return err
		}
		a.mu.Lock()
		for a.detaching {
			a.cond.Wait()
		}
		if a.detached {
			a.mu.Unlock()
			continue
		}
		a.inflight = true
		c.Cur = &a.Books
		bp := outBuffers.Get().(*[]byte)
		c.Out = (*bp)[:0]
		ferr := c.up.Feed(chunk, &c.Client)
		out := c.Out
		c.Out, c.Cur = nil, nil
		a.mu.Unlock()
		var werr error
		if len(out) > 0 {
			_, werr = a.conn.Conn.Write(out)
			c.bytesUp.Add(float64(len(out)))
		}
		if cap(out) <= 1<<20 {
			*bp = out[:0]
			outBuffers.Put(bp)
		}
		if h := c.ss.srv.testHookAfterForward; h != nil {
			h(a)
		}
		a.mu.Lock()
		a.inflight = false
		if werr != nil {
			// The server side fails too: let run report it.
			a.conn.Conn.Close()
		} else if a.detachableLocked() {
			a.wakeLocked()
		}
		a.mu.Unlock()
		if werr != nil {
			<-a.done
			if a.fatal {
				return errFatal
			}
			return ferr
		}
		return ferr
	}
}

func (c *txClient) attached() bool {
	a := c.att
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.detached
}

// armIdle sets the client's read deadline for the wait ahead.
func (c *txClient) armIdle() {
	if a := c.att; a != nil {
		a.mu.Lock()
		c.armClientDeadline(a)
		a.mu.Unlock()
		return
	}
	c.armClientDeadline(nil)
}

// armClientDeadline sets the client read deadline from the state: idle
// in a transaction (idle_transaction_timeout), idle outside one
// (client_idle_timeout), or at once when sluice is draining and the
// client can be let go. a.mu is held when a is not nil.
func (c *txClient) armClientDeadline(a *attachment) {
	live := a != nil && !a.detached
	var d time.Duration
	switch {
	case !live:
		d = c.clientIdle
	case a.busyLocked():
	case a.Status == 'T' || a.Status == 'E':
		d = c.idleTx
	default:
		d = c.clientIdle
	}
	dl := time.Time{}
	if d > 0 {
		dl = time.Now().Add(d)
	}
	if c.ss.draining.Load() && (!live || (!a.busyLocked() && a.Status == 'I')) {
		dl = time.Unix(1, 0)
	}
	if dl.IsZero() && !c.deadlineSet && !c.ss.draining.Load() {
		return // nothing to clear (drain sets one itself): skip the timer update
	}
	c.deadlineSet = !dl.IsZero()
	c.ss.client.SetReadDeadline(dl)
}

// onTimeout decides what a client read deadline meant; false ends the
// session (the client has been told why).
func (c *txClient) onTimeout() bool {
	live, busy, status := false, false, byte('I')
	if a := c.att; a != nil {
		a.mu.Lock()
		live, busy, status = !a.detached, a.busyLocked(), a.Status
		a.mu.Unlock()
	}
	switch {
	case busy:
		return true
	case c.ss.draining.Load() && status == 'I':
		c.leave(wire.Error(wire.CodeAdminShutdown, "terminating connection because sluice is shutting down"))
	case live && (status == 'T' || status == 'E') && c.idleTx > 0:
		c.leave(wire.Error(wire.CodeIdleInTransactionTimeout, "terminating connection due to idle-in-transaction timeout (limits.idle_transaction_timeout = %s)", c.idleTx))
	case status == 'I' && c.clientIdle > 0:
		c.leave(wire.Error(wire.CodeAdminShutdown, "terminating connection due to limits.client_idle_timeout (%s)", c.clientIdle))
	default:
		return true // a deadline set for a state that has passed
	}
	return false
}

// leave ends the client's session: a live attachment is cleaned up
// first, then msg (if any) is sent.
func (c *txClient) leave(msg *pgproto3.ErrorResponse) {
	ss := c.ss
	if a := c.att; a != nil {
		a.mu.Lock()
		if !a.detached {
			a.clientGone = true
			a.wakeLocked()
		}
		a.mu.Unlock()
		<-a.done
	}
	if msg != nil {
		ss.client.SetWriteDeadline(time.Now().Add(time.Second))
		wire.Write(ss.client, msg)
		ss.srv.log.Info("session ended by sluice", "remote", ss.remote(), "sqlstate", msg.Code, "reason", msg.Message)
	}
}
