package daemon

import (
	"log/slog"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/handoff"
)

// Cancels across an upgrade. Clients that cannot move (TLS, pinned,
// mid-COPY...) stay on the old process while it drains, but their
// CancelRequests reach the new one, which has the listeners. The old
// process's Done after the listeners says it takes them
// (handoff.DoneTakesCancels); the new one then passes each key it does
// not know over the hand-off socket, from Ready until the old process
// exits and the socket ends.

const (
	// cancelQueueLen bounds the cancels waiting to be passed on: one
	// beyond it is dropped, so a flood costs the accept path nothing.
	cancelQueueLen = 64
	// cancelSendTimeout bounds one send to an old process that stopped
	// reading; after it the socket is closed and nothing more is passed.
	cancelSendTimeout = 2 * time.Second
)

// cancelForwarder is the new process's end: one goroutine (run) sends
// the queued keys on conn, which the caller owns and closes.
type cancelForwarder struct {
	conn  *handoff.Conn
	log   *slog.Logger
	queue chan [8]byte
	gone  chan struct{} // closed when the old process is gone (or sending failed)
	once  sync.Once
}

func newCancelForwarder(conn *handoff.Conn, log *slog.Logger) *cancelForwarder {
	return &cancelForwarder{conn: conn, log: log, queue: make(chan [8]byte, cancelQueueLen), gone: make(chan struct{})}
}

// forward is the proxy's PredecessorCancel: it queues the key without
// blocking; false once the old process is gone.
func (f *cancelForwarder) forward(pid uint32, secret [4]byte) bool {
	select {
	case <-f.gone:
		return false
	default:
	}
	select {
	case f.queue <- [8]byte(handoff.EncodeCancel(pid, secret)):
	default:
		f.log.Debug("upgrade: cancel request for the old process dropped: too many queued", "pid", pid, "limit", cancelQueueLen)
	}
	return true
}

// stop marks the old process gone; run returns.
func (f *cancelForwarder) stop() { f.once.Do(func() { close(f.gone) }) }

// run sends the queued cancels until stop. A send that fails or times out
// closes the socket (a frame may be cut), which ends the reader too.
func (f *cancelForwarder) run() {
	for {
		select {
		case <-f.gone: // first: a closed gone wins over a full queue
			return
		default:
		}
		select {
		case <-f.gone:
			return
		case k := <-f.queue:
			if err := f.conn.SendWithin(cancelSendTimeout, handoff.KindCancel, k[:]); err != nil {
				f.log.Debug("upgrade: passing cancels to the old process ended", "error", err)
				f.stop()
				f.conn.Close()
				return
			}
		}
	}
}

// waitPredecessorGone reads conn until the old process closes it (it
// exited) or this one does; anything it sends meanwhile is ignored.
func waitPredecessorGone(conn *handoff.Conn) {
	for {
		_, _, files, err := conn.Recv()
		closeFiles(files)
		if err != nil {
			return
		}
	}
}

// handOffReader is the old process's reader of the hand-off socket once
// the new process serves: it applies each Cancel as if the CancelRequest
// came from the network, and passes the answers to clients (Adopted) to
// clientSender, until the socket ends (the new process exited, or this
// one closed it as it stops). It owns one goroutine; wait waits for it.
type handOffReader struct {
	answers chan handOffAnswer // closed when reading ends
}

type handOffAnswer struct {
	kind    handoff.Kind
	payload []byte
}

func startHandOffReader(conn *handoff.Conn, apply func(pid uint32, secret [4]byte), log *slog.Logger) *handOffReader {
	// One answer at most is awaited at a time (clientSender sends one
	// client after the other), so one slot never fills up.
	r := &handOffReader{answers: make(chan handOffAnswer, 1)}
	go func() {
		defer close(r.answers)
		for {
			kind, payload, files, err := conn.Recv()
			closeFiles(files)
			if err != nil {
				return
			}
			if kind != handoff.KindCancel {
				select {
				case r.answers <- handOffAnswer{kind, payload}:
				default:
					log.Warn("upgrade: unexpected message from the new process ignored", "kind", kind)
				}
				continue
			}
			pid, secret, err := handoff.DecodeCancel(payload)
			if err != nil {
				log.Warn("upgrade: malformed cancel from the new process ignored", "error", err)
				continue
			}
			apply(pid, secret)
		}
	}()
	return r
}

// wait waits for the reader to end (after the socket was closed).
func (r *handOffReader) wait() {
	for range r.answers {
	}
}
