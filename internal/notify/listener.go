package notify

import (
	"errors"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/backend"
)

// The listener connection's loop: Hub.run owns the connection's reads
// from dial to close; see Hub.

var errNotPrimary = errors.New("the listener's server no longer serves the pool (failover, RECONNECT, or a RELOAD that changed the server)")

// run is the listener's loop; see Hub.
func (h *Hub) run() {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		if h.stopLocked() {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		conn, err := h.opt.Dialer.DialListener(h.ctx)
		if err != nil {
			h.opt.Log.Warn("LISTEN fan-out: could not open the listener connection; notifications are lost until it is open", "error", err)
			select {
			case <-h.ctx.Done():
			case <-time.After(h.opt.Retry):
			}
			continue
		}
		h.mu.Lock()
		if h.stopLocked() {
			h.mu.Unlock()
			h.opt.Dialer.CloseListener(conn)
			continue
		}
		h.conn, h.have = conn, map[string]bool{}
		err = h.sendLocked(h.reg.Diff(h.have))
		h.mu.Unlock()
		h.opt.Connections.Inc()
		h.opt.Log.Debug("LISTEN fan-out: listener connection open", "server", conn.Addr, "pid", conn.PID)
		if err == nil {
			err = h.serve(conn)
		}
		h.mu.Lock()
		h.conn, h.have, h.inflight = nil, nil, nil
		stop := h.stopLocked()
		h.mu.Unlock()
		h.opt.Connections.Dec()
		h.opt.Dialer.CloseListener(conn)
		if !stop {
			h.opt.Log.Warn("LISTEN fan-out: listener connection lost; opening another and listening again (notifications sent meanwhile are lost)",
				"server", conn.Addr, "pid", conn.PID, "error", err)
		}
	}
}

// serve reads the listener connection until it fails, its server no
// longer qualifies, or nobody listens any more (nil).
func (h *Hub) serve(conn *backend.Conn) error {
	for {
		msg, err := conn.ReceiveWithin(h.opt.Check)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil // woken in a read: look around
		}
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case nil:
			h.mu.Lock()
			stop := h.stopLocked()
			h.mu.Unlock()
			if stop {
				return nil
			}
			if !h.opt.Dialer.ListenerUsable(conn) {
				return errNotPrimary
			}
		case *pgproto3.NotificationResponse:
			h.dispatch(m)
		case *pgproto3.ReadyForQuery:
			h.mu.Lock()
			if len(h.inflight) > 0 {
				h.ackLocked(h.inflight[0])
				h.inflight = h.inflight[1:]
			}
			h.mu.Unlock()
		case *pgproto3.ErrorResponse:
			h.opt.Log.Warn("LISTEN fan-out: the listener connection's server reported an error", "severity", m.Severity, "code", m.Code, "message", m.Message)
		}
	}
}

// dispatch queues one notification for every subscriber of its channel,
// encoded once and shared, and wakes those whose queue was empty.
func (h *Hub) dispatch(m *pgproto3.NotificationResponse) {
	h.opt.Received.Inc()
	frame, err := m.Encode(nil)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.reg.Each(m.Channel, func(s *Subscriber) {
		first, dropped := s.push(frame)
		if dropped {
			h.opt.Dropped.Inc()
		}
		if first {
			h.wake = append(h.wake, s)
		}
	})
	h.mu.Unlock()
	for _, s := range h.wake {
		s.wake()
	}
	clear(h.wake)
	h.wake = h.wake[:0]
}

// Listener returns the listener connection while it is open (nil
// otherwise), for the console's SHOW SERVERS. The connection stays the
// Hub's: the caller only reads what does not change once it is open
// (PID, addresses, creation time, ApplicationName).
func (h *Hub) Listener() *backend.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conn
}
