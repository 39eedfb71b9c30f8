package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/metrics"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// relay forwards one session's bytes in both directions until either side
// ends. It owns two named loops, clientToServer (run by the session
// goroutine) and serverToClient (its own goroutine); each is the only
// writer to its destination. Bytes are forwarded as read; a wire.Scanner
// finds message boundaries so the relay can tell whether the server
// connection is left at a clean point, without decoding any row.
type relay struct {
	client, server net.Conn
	bufs           *wire.Buffers
	log            *slog.Logger
	bytesUp        func(int) // metrics hooks, called once per chunk
	bytesDown      func(int)
	limits         relayLimits
	// stats count ReadyForQuery messages and time round trips for the
	// pool's metrics (nil: not counted). busySince is when the server
	// last went from owing nothing to owing an answer (clock's reading,
	// see now): set by clientToServer before it writes the request, read
	// by serverToClient at the ReadyForQuery that leaves nothing owed.
	stats     *metrics.PoolMetrics
	busySince atomic.Int64

	// Set by clientToServer, read after both loops stop.
	up         wire.Scanner
	lastUp     byte // type of the last complete client message other than Terminate
	terminated bool // the client said goodbye with Terminate
	bytesIn    int64
	sendFailed bool // a write to the server failed (send_deadline or I/O)

	// expectZ counts the ReadyForQuery messages the server owes (one per
	// Query, Sync and FunctionCall sent); gotZ those received. They decide
	// whether the connection can be reused, and fail safe: PostgreSQL
	// ignores a Sync during copy-in, so they can disagree, and then the
	// connection is closed rather than reused.
	expectZ atomic.Int64
	gotZ    atomic.Int64
	// askSeq numbers the Query/Sync/FunctionCall messages sent; zSeenAt is
	// askSeq when the last ReadyForQuery arrived. The timeouts treat the
	// server as owing an answer only while askSeq > zSeenAt, which never
	// drifts (at worst, in a pipeline, a timeout is armed late).
	askSeq  atomic.Int64
	zSeenAt atomic.Int64

	// Set by serverToClient.
	down wire.Scanner
	// holdFatal (set before run) makes serverToClient keep back an error
	// the server sends while the client is idle, in heldFatal.
	holdFatal bool
	heldFatal []byte
	// serverFatal: the server sent a FATAL (pg_terminate_backend,
	// idle_session_timeout, its own shutdown) and so told the client why
	// the connection ends; sluice adds no error of its own (afterRelay).
	serverFatal atomic.Bool
	txStatus    atomic.Uint32 // status byte of the last ReadyForQuery
	bytesOut    atomic.Int64
	rewrite     rewriter // used only after receive_timeout fired

	// stopping is set by whichever loop ends first (or by terminate).
	stopping    atomic.Bool
	serverFirst atomic.Bool // the server side ended first
	idleTimeout atomic.Bool // the client was idle past client_idle_timeout
	shutdown    atomic.Bool // sluice itself is ending the session
	// handOffWanted: an upgrade hand-off asked the relay to pause at its
	// next idle point; handOffStop: it was kicked (relay_handoff.go).
	handOffWanted atomic.Bool
	handOffStop   atomic.Bool
	upErr         error
	downErr       error

	// watchMu orders the arming and clearing of the receive deadline and
	// timer between the two loops; only taken when one is configured.
	watchMu  sync.Mutex
	silence  *time.Timer
	timedOut atomic.Bool // receive_timeout fired; its 57014 gets rewritten
}

// relayLimits are the per-database timeouts the relay enforces.
type relayLimits struct {
	sendDeadline    time.Duration // write deadline per send to the server
	receiveDeadline time.Duration // read deadline per receive while an answer is owed
	receiveTimeout  time.Duration // cancel a query after this much silence
	clientIdle      time.Duration // close a client idle this long
	maxBody         uint32        // limits.max_message_size - 4: a client message's largest body
	cancel          func()        // sends a CancelRequest for the attached server connection
}

// clean reports, after both loops stopped, whether the server connection
// is between messages with every answer delivered: then it can be reset
// and reused. Otherwise it must be closed.
func (r *relay) clean() bool {
	switch r.lastUp {
	case 0, 'Q', 'S', 'F':
	default:
		return false
	}
	return !r.sendFailed && r.up.AtBoundary() && r.down.AtBoundary() && r.gotZ.Load() == r.expectZ.Load()
}

// run relays until the client leaves or either connection fails.
func (r *relay) run() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.downErr = r.serverToClient()
		r.watchMu.Lock()
		if !r.stopping.Swap(true) {
			// The server side ended first: stop reading from the client.
			r.serverFirst.Store(true)
			r.client.SetReadDeadline(time.Unix(1, 0))
		}
		r.watchMu.Unlock()
	}()
	r.upErr = r.clientToServer()
	r.watchMu.Lock()
	if !r.stopping.Swap(true) {
		// The client side ended first: wake serverToClient. If the server
		// owes nothing, it is parked waiting for bytes and the deadline
		// ends that wait without losing anything.
		if isTimeout(r.upErr) && r.limits.clientIdle > 0 && !r.sendFailed && !r.handOffStop.Load() {
			r.idleTimeout.Store(true)
		}
		r.server.SetReadDeadline(time.Unix(1, 0))
	}
	r.watchMu.Unlock()
	<-done
	r.watchMu.Lock()
	if r.silence != nil {
		r.silence.Stop()
	}
	r.watchMu.Unlock()
	r.server.SetDeadline(time.Time{})
	r.client.SetDeadline(time.Time{})
}

// clientToServer forwards client bytes to the server and stops at the
// client's Terminate, which is not forwarded: the server connection lives on.
func (r *relay) clientToServer() error {
	if r.limits.clientIdle > 0 {
		r.watch()
	}
	poll := wire.NewPoller(r.client)
	for {
		if err := poll.Wait(); err != nil && err != wire.ErrNoRawConn {
			return err
		}
		if err := r.pump(r.client, r.forwardUp); err != nil {
			if err == errTerminated {
				return nil
			}
			return err
		}
	}
}

// pump reads from src into a pooled buffer and hands each chunk to
// forward, for as long as reads fill the whole buffer (more is likely
// waiting); then it returns the buffer, so a session that goes quiet holds
// none. A nil error means src is drained for now.
func (r *relay) pump(src net.Conn, forward func([]byte) error) error {
	bp := r.bufs.Get()
	defer r.bufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if ferr := forward(buf[:n]); ferr != nil {
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

// errTerminated ends clientToServer's pump when the client said Terminate.
var errTerminated = errors.New("client sent Terminate")

// forwardUp scans one client chunk and writes it to the server, dropping a
// Terminate and anything after it (then it returns errTerminated).
func (r *relay) forwardUp(chunk []byte) error {
	end := len(chunk)
	asked := false
	idle := r.stats != nil && r.gotZ.Load() == r.expectZ.Load() // nothing owed before this chunk
	err := r.up.Scan(chunk, r.limits.maxBody, func(typ byte, _ uint32, _ byte, at int) {
		if r.terminated {
			return
		}
		switch typ {
		case 'X':
			r.terminated = true
			end = at - wire.HeaderLen
			if end < 0 {
				// Part of it went out with the previous chunk: the
				// server connection is no longer at a boundary.
				r.lastUp, end = 'X', 0
			}
		case 'Q', 'S', 'F':
			r.expectZ.Add(1)
			r.askSeq.Add(1)
			r.lastUp = typ
			asked = true
		default:
			r.lastUp = typ
		}
	})
	if err != nil {
		return err
	}
	if end == 0 {
		return r.doneIfTerminated()
	}
	if asked && idle {
		r.busySince.Store(now())
	}
	if r.limits.sendDeadline > 0 {
		r.server.SetWriteDeadline(time.Now().Add(r.limits.sendDeadline))
	}
	if _, err := r.server.Write(chunk[:end]); err != nil {
		r.sendFailed = true
		return err
	}
	r.bytesIn += int64(end)
	r.bytesUp(end)
	if asked || r.limits.clientIdle > 0 {
		r.watch()
	}
	return r.doneIfTerminated()
}

func (r *relay) doneIfTerminated() error {
	if r.terminated {
		return errTerminated
	}
	return nil
}

// serverToClient forwards server bytes to the client, noting each
// ReadyForQuery's transaction status.
func (r *relay) serverToClient() error {
	debug := r.log.Enabled(context.Background(), slog.LevelDebug)
	var cur []byte // the chunk being scanned
	visit := func(typ byte, bodyLen uint32, first byte, end int) {
		switch typ {
		case 'Z':
			r.txStatus.Store(uint32(first))
			if got := r.gotZ.Add(1); r.stats != nil {
				r.stats.Ready(first)
				if got == r.expectZ.Load() {
					r.stats.QueryAnswered(time.Duration(now() - r.busySince.Load()))
				}
			}
			r.zSeenAt.Store(r.askSeq.Load())
			r.timedOut.Store(false)
			if first == 'I' && r.handOffWanted.Load() && r.gotZ.Load() == r.expectZ.Load() {
				r.kick() // an upgrade moves the session now (relay_handoff.go)
			}
		case 'E':
			// Only an error whole in this chunk is looked at (one cut by
			// a read is rare): then sluice may add its own 08006 too.
			if start := end - wire.HeaderLen - int(bodyLen); start >= 0 && wire.IsFatal(cur[start:end]) {
				r.serverFatal.Store(true)
			}
		}
	}
	watching := r.limits.receiveDeadline > 0 || r.limits.receiveTimeout > 0 || r.limits.clientIdle > 0
	forward := func(chunk []byte) error {
		if debug {
			r.log.Debug("Received data from database", "length", len(chunk),
				"local", r.server.LocalAddr().String(), "remote", r.server.RemoteAddr().String())
		}
		if r.down.AtBoundary() && !r.owed() && len(chunk) > 0 && chunk[0] == 'E' && r.holdFatal {
			// An error while the client is idle is the server ending the
			// connection (FATAL: terminating connection ...). Hold it: if
			// the session can go on over a new server, the client never
			// sees it (see session.canContinue); otherwise run's caller
			// sends it. The server closes right after, so nothing follows.
			r.heldFatal = append(r.heldFatal, chunk...)
			if wire.IsFatal(chunk) {
				r.serverFatal.Store(true)
			}
			return nil
		}
		if len(r.heldFatal) > 0 {
			if _, err := r.client.Write(r.heldFatal); err != nil {
				return err
			}
			r.heldFatal = nil
		}
		if r.down.AtBoundary() && r.timedOut.Swap(false) {
			r.rewrite.armed = true
		}
		slow := r.rewrite.armed || r.rewrite.active()
		cur = chunk
		if err := r.down.Scan(chunk, 0, visit); err != nil {
			return err
		}
		var err error
		if slow {
			err = r.rewrite.forward(r.client, chunk, r.limits.receiveTimeout)
		} else {
			_, err = r.client.Write(chunk)
		}
		r.bytesOut.Add(int64(len(chunk)))
		r.bytesDown(len(chunk))
		if err == nil && watching {
			r.watch()
		}
		return err
	}
	poll := wire.NewPoller(r.server)
	for {
		if err := poll.Wait(); err != nil && err != wire.ErrNoRawConn {
			return err
		}
		if err := r.pump(r.server, forward); err != nil {
			return err
		}
	}
}

// clockBase makes now monotonic: time.Since reads the monotonic clock.
var clockBase = time.Now()

// now is a monotonic clock reading in nanoseconds, storable in an atomic.
func now() int64 { return int64(time.Since(clockBase)) }

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) // what deadlines give, without allocating
}
