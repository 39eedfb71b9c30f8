package txpool

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Client is a transaction-pooled client: the session state that follows
// it from server connection to server connection (txcore.Client), and
// its loop (Serve, run by the session's goroutine). While no transaction
// runs it holds no server connection and no buffer. The session embeds
// it (Init), so that a client is one allocation.
type Client struct {
	// Client is the pure state: statements, settings, pins, and the
	// rewriting of what the client sends (the framer's sink).
	txcore.Client
	DB         *config.Database // the client's database (its configuration at login)
	env        *Env
	sess       Session
	conn       net.Conn          // the client's socket; the session owns it
	draining   *atomic.Bool      // the session's: leave at the next idle point
	parsed     *txcore.ParsedSet // of the pool of the current or last server connection
	idleTx     time.Duration
	clientIdle time.Duration
	bufs       *wire.Buffers

	up     wire.Framer
	att    *attachment // the current or last attachment
	poll   *wire.Poller
	ctx    context.Context // see Params.Ctx
	cancel context.CancelFunc
	// deadlineSet records that a client read deadline may be armed
	// (guarded like armClientDeadline's callers).
	deadlineSet bool
}

// Params are what a client is served with.
type Params struct {
	Env      *Env
	Session  Session
	Conn     net.Conn
	Draining *atomic.Bool
	DB       *config.Database
	Limits   config.Limits
	Bufs     *wire.Buffers
	// Ctx ends waits for a server connection when the session is
	// terminated (Cancel is the session's stop); it lives as long as the
	// client. It carries the client's startup parameters: every attach
	// takes a connection opened with them (settings affinity), so Want
	// holds only what the client SET since (source "session"), and RESET
	// returns to the client's startup values as on a direct connection.
	Ctx    context.Context
	Cancel context.CancelFunc
}

var clientIDs atomic.Uint64

// Init readies a new client (the zero value, embedded in its session's
// adapter); Acquire then gives it the connection whose parameters greet
// it, and Serve serves it.
func (c *Client) Init(p Params) {
	*c = Client{Client: txcore.Client{ID: clientIDs.Add(1), PerStatement: p.DB.PoolMode == config.PoolStatement,
		MaxStatements: p.DB.Pool.MaxPreparedStatements, Want: map[string]string{}},
		DB: p.DB, env: p.Env, sess: p.Session, conn: p.Conn, draining: p.Draining,
		idleTx: p.Limits.IdleTransactionTimeout.D(), clientIdle: p.Limits.ClientIdleTimeout.D(),
		bufs: p.Bufs, up: wire.Framer{MaxLen: uint32(p.Limits.MaxMessageSize)}, ctx: p.Ctx, cancel: p.Cancel}
}

// errFatal ends a session whose client was already told why.
var errFatal = errors.New("session ended")

// Acquire takes a server connection and gives it the client's settings;
// on failure the client has been told why. A read-only client's route
// picks the server (and so the pool) anew each time. The
// caller ends the returned lease (or, for attach, the attachment does).
func (c *Client) Acquire() (Lease, error) {
	e, conn, err := c.sess.Borrow(c.ctx)
	if e != nil {
		c.parsed = e.Parsed()
	}
	if err != nil {
		c.sess.FailAcquire(err)
		return Lease{}, errFatal
	}
	if err := conn.SyncSettings(c.ctx, c.Want, c.MaxStatements); err != nil {
		var se *backend.ServerError
		if errors.As(err, &se) {
			se.Response.Severity, se.Response.SeverityUnlocalized = "FATAL", "FATAL"
			c.conn.SetWriteDeadline(time.Now().Add(time.Second))
			wire.Write(c.conn, se.Response)
			(&Lease{e, conn}).End(c.env.Log, LeaseIdle, 'I', false) // the failed statement left it idle and clean
		} else {
			c.sess.Fail(wire.CodeConnectionFailure, "could not prepare server connection: "+err.Error())
			(&Lease{e, conn}).End(c.env.Log, LeaseLost, 'I', false)
		}
		return Lease{}, errFatal
	}
	return Lease{e, conn}, nil
}

// Ready makes what serving needs on the calling goroutine (the login's),
// not on the serving one: an allocation there can take the slow path
// and grow the goroutine's stack for good.
func (c *Client) Ready() { c.poll = wire.NewPoller(c.conn) }

// End forgets what the client held: its context, its pins (metrics).
func (c *Client) End() {
	c.cancel()
	c.setPins(nil)
}

// attach returns the live attachment, waiting for the last one to end
// and attaching a server connection when there is none.
func (c *Client) attach() (*attachment, error) {
	if a, err := c.liveAttachment(); a != nil || err != nil {
		return a, err
	}
	if c.draining.Load() {
		return nil, errDraining
	}
	l, err := c.Acquire()
	if err != nil {
		return nil, err
	}
	a := newAttachment(c, l)
	c.sess.AttachServer(l.Conn)
	c.att = a
	go a.run()
	return a, nil
}

// liveAttachment returns the client's attachment while it is live. An
// ended one is waited for and forgotten (nil, nil), or ends the session
// when it ended fatally (errFatal: the client was told why).
func (c *Client) liveAttachment() (*attachment, error) {
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

// setPins records why the client now holds its server connection between
// transactions, counting each new reason in metrics and logging it.
func (c *Client) setPins(pins []string) {
	m := c.env.Metrics
	for _, r := range pins {
		if !slices.Contains(c.Pins, r) {
			m.Pins.WithLabelValues(r).Inc()
			m.PinnedClients.WithLabelValues(r).Inc()
			c.env.Log.Debug("client pinned to its server connection", "reason", r, "remote", c.sess.Remote(), "database", c.DB.Name)
		}
	}
	for _, r := range c.Pins {
		if !slices.Contains(pins, r) {
			m.PinnedClients.WithLabelValues(r).Dec()
			c.env.Log.Debug("client no longer pinned", "reason", r, "remote", c.sess.Remote(), "database", c.DB.Name)
		}
	}
	c.Pins = pins
}
