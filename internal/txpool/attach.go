package txpool

import (
	"errors"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Attaching: the client's loop borrows a server connection for a
// transaction (Acquire, attach); the server's answers are relayed by
// pumpDown, on the client's goroutine for a complete request
// (readInline, inline.go) or in the attachment's own loop (run), until
// the connection can leave the client (its endings are in detach.go).

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
	return a, nil // forward reads the answer inline or starts run
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
	<-a.done // an attachment still referenced once detached had a reader
	if a.fatal {
		return nil, errFatal
	}
	c.att = nil
	return nil, nil
}

var errDraining = errors.New("sluice is shutting down")

// attachment is one transaction-pooled client's use of one server
// connection, from attach to detach. Whoever reads the server owns the
// connection and alone returns it to the pool (or closes it): the
// client's goroutine while it reads an answer inline (readInline), then,
// if the answer is slow or the client stays attached, the attachment's
// own goroutine (run, the serverToClient loop), which closes done when
// it ends. The client's goroutine sends under mu and never after
// detached is set. An attachment that ended inline is forgotten by its
// client: an idle client keeps none.
type attachment struct {
	client *Client
	Lease  // the borrowed server connection; its reader ends it
	tx     *backend.TxState
	done   chan struct{} // made when run starts: only a reader needs one
	f      txcore.DownFilter
	// reader: run's goroutine was started (client goroutine's).
	reader bool
	// watchFired: the inline watch set a read deadline on the server
	// socket (guarded by the Env's sweeps.watchMu).
	watchFired bool

	mu   sync.Mutex
	cond sync.Cond // signalled when detaching ends
	// Books are the requests and answers (txcore), guarded by mu.
	txcore.Books
	// Guarded by mu.
	inflight   bool // the client goroutine is between taking mu and finishing its write
	wake       bool // the client goroutine asked run to look at the flags
	clientGone bool // the client left: clean up and end
	detaching  bool // run is deciding whether to detach; senders wait
	detached   bool // the connection is gone from this client
	fatal      bool // the client must be disconnected (set with detached)

	notify bool // the client goroutine asked run to write queued notifications (listen.go)

	// Owned by run's goroutine.
	serverFatal bool // a FATAL from the server was relayed: the client knows why it ends
	// The reader's: a ReadyForQuery held back until the transaction's
	// LISTENs are moved to the pool's listener (listen.go).
	heldZ [6]byte
	zHeld bool
}

func newAttachment(c *Client, l Lease) *attachment {
	a := &attachment{client: c, Lease: l, tx: l.Conn.Tx(c.MaxStatements)}
	a.Books.Init(&c.Client, a.tx.Statements, &a.tx.UnnamedOwner, l.Home.Parsed(), statementName)
	a.cond.L = &a.mu
	return a
}

// busyLocked reports whether the server owes answers or the client has
// sent part of a batch without its Sync (txcore.Books.Busy).
func (a *attachment) busyLocked() bool { return a.Busy(a.client.up.MidStream()) }

// detachableLocked reports whether the connection can leave the client
// now: idle outside a transaction with every request answered, and no
// state that pins the client to it (unless that state may be gone).
func (a *attachment) detachableLocked() bool {
	return !a.inflight && !a.detaching && !a.detached && a.Idle(a.client.up.MidStream())
}

// wakeLocked interrupts run's wait for server bytes so it looks at the
// flags (a.mu held).
func (a *attachment) wakeLocked() {
	a.wake = true
	a.Conn.Conn.SetReadDeadline(time.Unix(1, 0))
}

// clearWakeLocked withdraws a wake-up that run did not consume, as the
// connection leaves the client (a.mu held, a.detached set, so no new one
// can come; a client that stays attached keeps its wake-ups: one may be
// leave's). The client goroutine
// wakes run when it finds the attachment detachable after its write; if
// run meanwhile saw the same ReadyForQuery and chose to detach, the
// wake's past read deadline would stay on the connection: the pool's
// alive check would then report the next borrower a dead connection, and
// the pool would close it and dial another (a pinned client's backend
// silently changed under load).
func (a *attachment) clearWakeLocked() {
	if a.wake {
		a.wake = false
		a.Conn.Conn.SetReadDeadline(time.Time{})
	}
}

var errDetach = errors.New("detach")

// run is the serverToClient loop; see attachment.
func (a *attachment) run() {
	defer close(a.done)
	f := &a.f // the inline read's state, if it began the answer
	poll := a.Conn.Poller()
	bufs := a.client.bufs
	for {
		err := poll.Wait()
		if err == wire.ErrNoRawConn {
			err = nil
		}
		if err == nil {
			err = a.pumpDown(f, bufs)
		}
		if err == nil {
			continue
		}
		if isTimeout(err) {
			a.mu.Lock()
			woken := a.wake
			a.wake = false
			gone := a.clientGone
			notify := a.takeNotifyLocked()
			detach := a.detachableLocked()
			if detach {
				a.detaching = true
			}
			a.Conn.Conn.SetReadDeadline(time.Time{})
			a.mu.Unlock()
			switch {
			case gone:
				a.cleanup()
				return
			case detach:
				err = errDetach
			case woken:
				if sub := a.client.listen.Load(); notify && sub != nil {
					writeNotifications(a.client, sub) // pinned and idle: run is the client's writer
				}
				continue
			}
		}
		if err == errDetach {
			if a.detach() {
				continue // pinned: stay attached
			}
			if c := a.client; c.env.sweeps.handOff.Load() {
				c.askHop() // an upgrade's hand-off: offer the client now it is idle (handoff.go)
			}
			return
		}
		// The server connection failed (or the client write did).
		a.serverLost(err)
		return
	}
}

// pumpDown forwards server bytes until a read would block, or returns
// errDetach once a ReadyForQuery leaves the connection detachable.
func (a *attachment) pumpDown(f *txcore.DownFilter, bufs *wire.Buffers) error {
	bp := bufs.Get()
	defer bufs.Put(bp)
	buf := *bp
	for {
		n, err := a.Conn.Conn.Read(buf)
		if n > 0 {
			res, ferr := f.Filter(&a.Books, &a.mu, buf[:n])
			if ferr != nil {
				return ferr
			}
			if res.Ready > 0 {
				a.Home.Answered(res.Ready, res.ReadyIdle)
			}
			if res.Unexpected > 0 {
				a.client.env.Log.Warn("transaction pooling: unexpected answer from server; passing it on", "type", string(res.UnexpectedType), "count", res.Unexpected)
			}
			out := res.Out
			if res.EndsWithZ && a.Listens() {
				a.mu.Lock()
				out = a.holdReadyLocked(out)
				a.mu.Unlock()
			}
			if len(out) > 0 {
				if _, werr := a.client.conn.Write(out); werr != nil {
					return clientWriteError{werr}
				}
				a.client.env.Metrics.BytesSrvToClient.Add(float64(len(out)))
				a.serverFatal = a.serverFatal || res.Fatal
			}
			if res.StmtBreach {
				return errStatementMode
			}
			if res.Unsolicited {
				return errServerEnding
			}
			if res.EndsWithZ {
				if h := a.client.env.BeforeDetachCheck; h != nil {
					h(Probe{a})
				}
				a.mu.Lock()
				d := a.detachableLocked()
				if d {
					a.detaching = true
				} else {
					a.client.armClientDeadline(a)
				}
				a.mu.Unlock()
				if d {
					return errDetach
				}
				a.releaseReady() // not detaching now: the client sent more meanwhile
				if sub := a.client.listen.Load(); sub != nil && res.Status == 'I' && sub.Pending() {
					// Staying attached (pinned) at the end of a transaction:
					// what was queued during it goes now, after its
					// ReadyForQuery (the client goroutine may have looked
					// before the answer came, and then waits for its client).
					writeNotifications(a.client, sub)
				}
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

type clientWriteError struct{ error }

var errStatementMode = errors.New("transaction opened in statement pool mode")

// errServerEnding: the server sent an error nobody asked for while the
// client was idle; it is closing the connection (see txcore.DownResult).
var errServerEnding = errors.New("the server ended the connection while the client was idle")
