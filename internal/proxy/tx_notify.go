package proxy

import (
	"context"
	"errors"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/notify"
	"github.com/sluice-proxy/sluice/internal/pool"
)

// The LISTEN fan-out's side in proxy: each (database, user) pool has at
// most one notify.Hub, made at the first LISTEN of one of its
// transaction-pooled clients, whose listener connection is dialled like
// the pool's (to the current primary, with the pool's login) but is not
// one of them: it does not count in max_size, and counts in the
// database's max_db_connections gate when there is one.

// Notifier is txpool.Session's: the client's (database, user) pool's
// fan-out (a read-only client's too: LISTEN runs on the primary).
func (h *txHost) Notifier() *notify.Hub { return h.ss.srv.notifierFor(h.entry) }

func (s *Server) notifierFor(e *poolEntry) *notify.Hub {
	if hub := e.hub.Load(); hub != nil {
		return hub
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if hub := e.hub.Load(); hub != nil || s.notifyClosed {
		return hub
	}
	m := s.metrics.Notify
	hub := notify.NewHub(notify.Options{
		Log:         s.log.With("database", e.key.database, "user", e.key.user),
		Dialer:      &listenerDialer{s: s, e: e},
		Connections: m.ListenerConnections.WithLabelValues(e.key.database, e.key.user),
		Received:    m.NotificationsReceived,
		Dropped:     m.NotificationsDropped,
	})
	e.hub.Store(hub)
	return hub
}

// closeNotifiers stops every pool's fan-out (Shutdown, once the
// sessions ended).
func (s *Server) closeNotifiers() {
	s.mu.Lock()
	s.notifyClosed = true
	var hubs []*notify.Hub
	for _, e := range s.pools {
		if hub := e.hub.Load(); hub != nil {
			hubs = append(hubs, hub)
		}
	}
	s.mu.Unlock()
	for _, hub := range hubs {
		hub.Close()
	}
}

// listenerDialer opens a pool's listener connection (notify.Dialer);
// one connection at a time, so it remembers the gate token it holds.
type listenerDialer struct {
	s    *Server
	e    *poolEntry
	gate *pool.Gate // the gate the open connection holds a token of
}

var errListenerGate = errors.New("the database's max_db_connections is reached; the listener connection waits for room")

func (d *listenerDialer) DialListener(ctx context.Context) (*backend.Conn, error) {
	g := d.s.gateFor(d.e.db.Load())
	if g != nil && !g.TakeOutside() {
		return nil, errListenerGate
	}
	conn, err := d.e.dial(ctx)
	if err != nil {
		if g != nil {
			g.GiveOutside()
		}
		return nil, err
	}
	d.gate = g
	return conn, nil
}

func (d *listenerDialer) CloseListener(conn *backend.Conn) {
	conn.Terminate()
	conn.Close()
	if d.gate != nil {
		d.gate.GiveOutside()
		d.gate = nil
	}
}

// ListenerUsable: the listener moves after a failover (usable), and when
// the pool's connections were retired (RECONNECT, SWITCHOVER, a RELOAD
// that changed the server), as they are.
func (d *listenerDialer) ListenerUsable(conn *backend.Conn) bool {
	return d.e.usable(conn) && !d.e.pool.Retired(conn)
}
