package txpool

import (
	"errors"
	"os"
	"sync"
	"unsafe"

	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// The client's loop: Serve waits for client bytes, pumpUp reads them,
// forward hands each chunk to the framer and txcore.Client under the
// attachment's lock and writes what they produced to the server, then
// reads the answer to a complete request itself (readInline, inline.go).

var outBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

// ServeEnd is how Serve returned.
type ServeEnd uint8

const (
	// Ended: the client is gone; End must be called.
	Ended ServeEnd = iota
	// Moved: the caller goes on serving the client on a fresh goroutine
	// (a hop).
	Moved
	// Parked: the client is parked (park.go) and owned by the Env's
	// table, which hands it to Session.Resume; the caller must return
	// without touching it.
	Parked
)

// Serve is the clientToServer loop. It returns when the client is gone,
// or when the hop sweep (sweep.go) found it idle for a full period: it
// is then parked (no goroutine until its socket is readable, park.go) or,
// when it cannot be parked (TLS, not Linux) and its goroutine's stack
// grew, it asks to go on on a fresh goroutine. A round of forwarding can
// grow the stack (acquiring a connection, waiting for one, syncing
// settings, reading an answer inline run deep), and a stack that grew
// once never shrinks back below 4 kB while the goroutine idles (the GC
// halves only stacks using under a quarter, counting 800 bytes of
// guard): for 10,000 idle clients that is 20 MB; moving after every such
// round instead cost a goroutine start, an exit and a stack copy per
// transaction. A client that cannot be parked now (attached, mid-message)
// is asked again the next period. The client read deadline armed before
// a park or a move is kept across it.
func (c *Client) Serve() ServeEnd {
	var mark byte
	at := uintptr(unsafe.Pointer(&mark)) // changes when the runtime moves the stack
	w := &c.env.sweeps
	if c.has(flagParkable) {
		c.lastActive.Store(w.hopGen.Load()) // asked after a full period
		c.grownNoted = true
		w.enroll(c)
	}
	for {
		if c.hopped {
			c.hopped = false
			c.restoreIdle()
		} else {
			c.armIdle()
		}
		if sub, ok := c.pendingNotifications(); ok {
			c.deliverNotifications(sub) // after arming: see notifyWake
			if h := c.env.NotificationsDelivered; h != nil {
				h(c.lateWake)
			}
		}
		err := c.poll.Wait()
		if err == wire.ErrNoRawConn {
			err = nil
		}
		if err == nil {
			err = c.pumpUp()
		}
		switch {
		case isTimeout(err) && c.killed():
			c.leave(errKilled()) // KILL, KILL_CLIENT: idle or inside a transaction
		case err == nil:
			if w.handOff.Load() { // an upgrade hands clients over (handoff.go)
				c.staleDeadline = true
				if c.offer() {
					return Parked
				}
			}
			if g := w.hopGen.Load(); c.lastActive.Load() != g {
				c.lastActive.Store(g) // at most once per period: a load otherwise
			}
			grown := uintptr(unsafe.Pointer(&mark)) != at
			if c.has(flagHopWanted) && c.take(flagHopWanted) {
				// Asked while this round ran: the next wait arms its
				// deadline afresh, over the sweep's past one.
				c.grownNoted, c.staleDeadline = false, true
				if grown && !c.has(flagParkable) {
					return Moved
				}
			}
			if !c.grownNoted && (grown || c.has(flagParkable)) {
				c.grownNoted = true
				w.enroll(c)
			}
			continue
		case isTimeout(err) && c.take(flagHopWanted):
			c.grownNoted, c.hopped = false, true // restoreIdle re-arms the deadline
			switch c.park() {
			case parkedNow:
				return Parked
			case parkNever:
				c.set(flagParkable, false)
			}
			if uintptr(unsafe.Pointer(&mark)) != at {
				return Moved
			}
			if c.has(flagParkable) { // not now: asked again next period
				c.grownNoted = true
				w.enroll(c)
			}
			continue
		case isTimeout(err) && c.notifyTimeout():
			c.staleDeadline = true // notifyWake's: deliver, re-arm, wait again
			continue
		case isTimeout(err):
			if c.onTimeout() {
				// A deadline for a state that passed, or the hop sweep's
				// that came late: re-arm, even to none.
				c.staleDeadline = true
				continue
			}
		case errors.Is(err, errFatal):
		case errors.Is(err, errDraining):
			c.leave(wire.Error(wire.CodeAdminShutdown, "terminating connection because sluice is shutting down"))
		default:
			c.leave(messageRefusal(err)) // nil: Terminate, end of file, or a broken client connection
		}
		return Ended
	}
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) // what deadlines give, without allocating
}

// pumpUp reads and forwards client bytes until a read would block.
func (c *Client) pumpUp() error {
	bp := c.bufs.Get()
	defer c.bufs.Put(bp)
	buf := *bp
	for {
		n, err := c.conn.Read(buf)
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
func (c *Client) forward(chunk []byte) error {
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
			_, werr = a.Conn.Conn.Write(out)
			c.env.Metrics.BytesClientToSrv.Add(float64(len(out)))
		}
		if cap(out) <= 1<<20 {
			*bp = out[:0]
			outBuffers.Put(bp)
		}
		if h := c.env.AfterForward; h != nil {
			h(Probe{a})
		}
		a.mu.Lock()
		a.inflight = false
		inline := a.readsInline(werr, ferr)
		if werr != nil {
			// The server side fails too: let run report it.
			a.Conn.Conn.Close()
		} else if !inline && a.detachableLocked() {
			a.wakeLocked() // run's, started below if it is not running
		}
		a.mu.Unlock()
		if inline {
			if a.readInline() {
				return errFatal
			}
			return nil
		}
		a.startReader()
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

func (c *Client) attached() bool {
	a := c.att
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.detached
}

// answerParseLocally answers, without a server connection, a chunk that
// is exactly Parse (named) + Sync from a client outside a transaction,
// when the statement's server form is one PostgreSQL has already
// accepted for this pool (the decision and why: txcore.Client.LocalParse).
// It reports whether it answered; false leaves the chunk to the usual
// path.
func (c *Client) answerParseLocally(chunk []byte) bool {
	if !c.up.AtBoundary() || c.parsed == nil {
		return false
	}
	l, ok := c.LocalParse(chunk, c.parsed, statementName)
	if !ok || !c.idleUnattached() {
		return false
	}
	c.AddLocal(l)
	if _, err := c.conn.Write(txcore.ParseCompleteReady); err != nil {
		return false // the next read fails and ends the session
	}
	c.env.Metrics.BytesSrvToClient.Add(float64(len(txcore.ParseCompleteReady)))
	return true
}

// idleUnattached reports whether the client holds no server connection
// and its last attachment ended cleanly, so nothing else writes to it.
func (c *Client) idleUnattached() bool {
	a, err := c.liveAttachment()
	return a == nil && err == nil
}
