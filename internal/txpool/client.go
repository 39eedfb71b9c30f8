package txpool

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/notify"
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
	att    *attachment     // the current or last attachment
	poll   wire.Poller     // the client socket's (Ready)
	ctx    context.Context // see Params.Ctx
	cancel context.CancelFunc
	// idleAt is the client read deadline armed last (Unix ns; 0: none),
	// restored after a hop (guarded like deadlineSet; atomic because the
	// hop sweep's request races nothing but a reader may arm meanwhile).
	idleAt atomic.Int64
	// The hop sweep's (sweep.go): lastActive is its generation at the
	// client's last round; grownNoted and hopped are the client
	// goroutine's (enrolled with the sweep; the client was moved or
	// parked while waiting).
	lastActive atomic.Int64
	// flags holds bits of different owners in one word, all read and
	// written atomically: flagHopWanted (the sweep's request to park or
	// move), flagParkable (the client goroutine's), flagEpollAdded and
	// flagNoPark (guarded by the Env's parking.mu, park.go).
	flags      atomic.Uint32
	grownNoted bool
	hopped     bool
	// staleDeadline: the last wait ended on a deadline that no longer
	// applies; the next armIdle sets one even if it would skip (the
	// client goroutine's).
	staleDeadline bool
	// deadlineSet records that a client read deadline may be armed
	// (guarded like armClientDeadline's callers). With the other flags,
	// so that they share a word.
	deadlineSet bool
	// listen is the client's side of the LISTEN fan-out (listen.go), set
	// at its first LISTEN (by the reader that detaches); maxPending
	// bounds its queue (0: the fan-out is off).
	listen     atomic.Pointer[notify.Subscriber]
	maxPending int
}

func (c *Client) lastActiveGen() int64 { return c.lastActive.Load() }

const (
	flagHopWanted  uint32 = 1 << iota // the hop sweep asked the client to park or move
	flagParkable                      // the client may be parked when idle (park.go)
	flagEpollAdded                    // its socket is in the epoll set, perhaps disabled by ONESHOT
	flagNoPark                        // the session is closing: never register again
	flagNotify                        // notifications were queued for the client (listen.go)
	flagKilled                        // the operator ended the session (KILL, KILL_CLIENT): leave now (idle.go)
)

func (c *Client) has(f uint32) bool { return c.flags.Load()&f != 0 }

// take clears f and reports whether it was set.
func (c *Client) take(f uint32) bool { return c.flags.And(^f)&f != 0 }

func (c *Client) set(f uint32, on bool) {
	if on {
		c.flags.Or(f)
	} else {
		c.flags.And(^f)
	}
}

// askHop is the hop sweep's request (hopMu held): a past read deadline
// ends the client goroutine's wait, and it parks or moves (Serve).
func (c *Client) askHop() {
	c.flags.Or(flagHopWanted)
	c.conn.SetReadDeadline(time.Unix(1, 0))
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
		MaxStatements: p.DB.Pool.MaxPreparedStatements, Policy: p.Session,
		ListensUnpinned: p.Limits.MaxPendingNotifications > 0},
		DB: p.DB, env: p.Env, sess: p.Session, conn: p.Conn, draining: p.Draining,
		idleTx: p.Limits.IdleTransactionTimeout.D(), clientIdle: p.Limits.ClientIdleTimeout.D(), maxPending: p.Limits.MaxPendingNotifications,
		bufs: p.Bufs, up: wire.Framer{MaxLen: uint32(p.Limits.MaxMessageSize)}, ctx: p.Ctx, cancel: p.Cancel}
}

// errFatal ends a session whose client was already told why.
var errFatal = errors.New("session ended")

// Ready makes what serving needs on the calling goroutine (the login's),
// not on the serving one: an allocation there can take the slow path
// and grow the goroutine's stack for good.
func (c *Client) Ready() {
	c.poll.Init(c.conn)
	_, hasFD := c.conn.(syscall.Conn) // a *tls.Conn has none: it keeps the hop
	c.set(flagParkable, parkSupported && hasFD)
}

// End forgets what the client held: its context, its pins (metrics), its
// registration in the parking epoll set (which must go before the
// session closes the socket). The client's goroutine calls it.
func (c *Client) End() {
	c.env.sweeps.forget(c)
	c.endParking() // before the session closes the socket
	c.cancel()
	c.setPins(nil, 0)
	c.leaveListens()
}

// setPins records why the client now holds its server connection (whose
// process ID is serverPID) between transactions, counting each new
// reason in metrics and logging it once, at info, with the statement
// that made it and how the client can end it.
func (c *Client) setPins(pins []string, serverPID uint32) {
	m := c.env.Metrics
	for _, r := range pins {
		if !slices.Contains(c.Pins, r) {
			m.Pins.WithLabelValues(r).Inc()
			m.PinnedClients.WithLabelValues(r).Inc()
			c.env.Log.Info("client pinned to its server connection", "reason", r, "statement", c.pinCause(),
				"release", txcore.PinRelease(r), "remote", c.sess.Remote(), "database", c.DB.Name, "server_pid", serverPID)
		}
	}
	for _, r := range c.Pins {
		if !slices.Contains(pins, r) {
			m.PinnedClients.WithLabelValues(r).Dec()
			c.env.Log.Debug("client no longer pinned", "reason", r, "remote", c.sess.Remote(), "database", c.DB.Name)
		}
	}
	c.Pins = pins
	c.sess.NotePins(pins, c.pinCause(), serverPID)
	c.PinCause = "" // a pin the lexer did not see is not blamed on an older statement
}

// pinCause is the statement to blame for a new pin.
func (c *Client) pinCause() string {
	if c.PinCause == "" {
		return "(not seen by sluice: a function or a statement it does not lex)"
	}
	return c.PinCause
}
