package proxy

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// attachment is one transaction-pooled client's use of one server
// connection, from attach to detach. Its goroutine (run) is the
// serverToClient loop and the connection's owner: it alone returns the
// connection to the pool (or closes it), then closes done. The client's
// goroutine sends under mu and never after detached is set.
type attachment struct {
	ss     *session
	client *txClient
	lease  // the borrowed server connection; run's goroutine ends it
	tx     *backend.TxState
	done   chan struct{}
	queued atomic.Int32 // len(queue), read without mu on the hot path

	mu   sync.Mutex
	cond sync.Cond // signalled when detaching ends
	// Guarded by mu.
	queue          []pending
	asks, gotZ     int64 // Query/Sync/FunctionCall sent; ReadyForQuery received
	status         byte  // of the last ReadyForQuery
	lastSent       byte  // type of the last message sent
	inflight       bool  // the client goroutine is between taking mu and finishing its write
	effects        sqlscan.Effects
	sawParamStatus bool
	wake           bool // the client goroutine asked run to look at the flags
	clientGone     bool // the client left: clean up and end
	detaching      bool // run is deciding whether to detach; senders wait
	detached       bool // the connection is gone from this client
	fatal          bool // the client must be disconnected (set with detached)

	// Owned by run's goroutine.
	serverFatal bool // a FATAL from the server was relayed: the client knows why it ends
}

func newAttachment(ss *session, c *txClient, e *poolEntry, conn *backend.Conn) *attachment {
	a := &attachment{ss: ss, client: c, lease: lease{entry: e, conn: conn}, tx: conn.Tx(c.maxStatements), done: make(chan struct{}), status: 'I'}
	a.cond.L = &a.mu
	return a
}

// owedLocked reports whether the server owes answers or the client has
// sent part of a batch without its Sync.
func (a *attachment) busyLocked() bool {
	switch a.lastSent {
	case 0, 'Q', 'S', 'F':
	default:
		return true
	}
	return a.asks != a.gotZ || len(a.queue) > 0 || a.client.up.MidStream()
}

// detachableLocked reports whether the connection can leave the client
// now: idle outside a transaction with every request answered, and no
// state that pins the client to it (unless that state may be gone).
func (a *attachment) detachableLocked() bool {
	if a.inflight || a.detaching || a.detached || a.status != 'I' || a.busyLocked() {
		return false
	}
	return len(a.client.pins) == 0 || a.needSnapshotLocked()
}

func (a *attachment) needSnapshotLocked() bool {
	return a.sawParamStatus || a.effects&(sqlscan.SetsSession|sqlscan.MayPin|sqlscan.MayUnpin|sqlscan.Load) != 0
}

// wakeLocked interrupts run's wait for server bytes so it looks at the
// flags (a.mu held).
func (a *attachment) wakeLocked() {
	a.wake = true
	a.conn.Conn.SetReadDeadline(time.Unix(1, 0))
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
		a.conn.Conn.SetReadDeadline(time.Time{})
	}
}

var errDetach = errors.New("detach")

// run is the serverToClient loop; see attachment.
func (a *attachment) run() {
	defer close(a.done)
	var f downFilter
	poll := a.conn.Poller()
	bufs := a.client.bufs
	for {
		err := poll.Wait()
		if err == wire.ErrNoRawConn {
			err = nil
		}
		if err == nil {
			err = a.pumpDown(&f, bufs)
		}
		if err == nil {
			continue
		}
		if isTimeout(err) {
			a.mu.Lock()
			woken := a.wake
			a.wake = false
			gone := a.clientGone
			detach := a.detachableLocked()
			if detach {
				a.detaching = true
			}
			a.conn.Conn.SetReadDeadline(time.Time{})
			a.mu.Unlock()
			switch {
			case gone:
				a.cleanup()
				return
			case detach:
				err = errDetach
			case woken:
				continue
			}
		}
		if err == errDetach {
			if a.detach() {
				continue // pinned: stay attached
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
func (a *attachment) pumpDown(f *downFilter, bufs *wire.Buffers) error {
	bp := bufs.Get()
	defer bufs.Put(bp)
	buf := *bp
	for {
		n, err := a.conn.Conn.Read(buf)
		if n > 0 {
			res, ferr := f.filter(a, buf[:n])
			if ferr != nil {
				return ferr
			}
			if len(res.out) > 0 {
				if _, werr := a.ss.client.Write(res.out); werr != nil {
					return clientWriteError{werr}
				}
				a.client.bytesDown.Add(float64(len(res.out)))
				a.serverFatal = a.serverFatal || res.fatal
			}
			if res.stmtBreach {
				return errStatementMode
			}
			if res.unsolicited {
				return errServerEnding
			}
			if res.endsWithZ {
				if h := a.ss.srv.testHookBeforeDetachCheck; h != nil {
					h(a)
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
// client was idle; it is closing the connection (see downResult).
var errServerEnding = errors.New("the server ended the connection while the client was idle")
