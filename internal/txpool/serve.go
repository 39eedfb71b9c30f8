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
// attachment's lock and writes what they produced to the server.

var outBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

// Serve is the clientToServer loop. It returns true, asking to go on on a
// fresh goroutine, when a round of forwarding grew the goroutine's stack
// (acquiring a connection, waiting for one, syncing settings run deep):
// a stack that grew once never shrinks back below 4 kB while the
// goroutine idles (the GC halves only stacks using under a quarter,
// counting 800 bytes of guard), and for 10,000 idle clients that is
// 20 MB. The move happens after the client's bytes were written, off
// the path of its query, and only when the stack was actually moved.
// On false the client is gone and End must be called.
func (c *Client) Serve() (moved bool) {
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
		if werr != nil {
			// The server side fails too: let run report it.
			a.Conn.Conn.Close()
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
