package notify

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/backend"
)

// Dialer opens and closes a pool's listener connection (proxy's pool
// entry implements it).
type Dialer interface {
	// DialListener opens a server connection to the pool's current
	// primary, counted against the database's max_db_connections gate
	// when it has one (an error when the gate is full), never against
	// the pool's max_size.
	DialListener(ctx context.Context) (*backend.Conn, error)
	// CloseListener closes it and gives its gate token back.
	CloseListener(*backend.Conn)
	// ListenerUsable reports whether the connection's server still
	// serves the pool (after a failover, the old primary's does not; nor,
	// in proxy, one retired by RECONNECT or a RELOAD that changed the
	// server). The listener is replaced when it is not.
	ListenerUsable(*backend.Conn) bool
}

// Gauge and Counter are the metrics a Hub keeps (prometheus's types
// satisfy them).
type (
	Gauge interface {
		Inc()
		Dec()
	}
	Counter interface{ Inc() }
)

// Options configure a Hub.
type Options struct {
	Log    *slog.Logger
	Dialer Dialer
	// Connections counts the open listener connection
	// (sluice_listener_connections); Received the notifications it read;
	// Dropped those dropped from a full client queue.
	Connections Gauge
	Received    Counter
	Dropped     Counter
	// Check is how often an idle listener checks that its server still
	// qualifies (default 1 s); Retry how long it waits after a failed
	// dial (default 1 s).
	Check, Retry time.Duration
}

// Change is what a client's transaction did to its channels: UNLISTEN *
// or DISCARD ALL (UnlistenAll), UNLISTEN of some (Unlisten), LISTEN of
// some (Listen, read back from the server). UnlistenAll and Unlisten
// apply first, to what the client listened to before.
type Change struct {
	UnlistenAll bool
	Unlisten    []string
	Listen      []string
}

// Hub is one pool's fan-out: the registry of its clients' channels and
// the listener connection that LISTENs to their union. Its goroutine
// (run) runs while anyone listens: it dials the listener connection
// (again after a loss, re-LISTENing every channel), reads it, and hands
// each notification to the subscribers of its channel. Commands
// (LISTEN/UNLISTEN) are written under mu by whoever changed the union;
// run counts their ReadyForQuery answers (acked), which Wait waits for.
type Hub struct {
	opt    Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	reg      Registry[*Subscriber]
	have     map[string]bool // the listener connection's channels (commands sent)
	conn     *backend.Conn   // the listener connection while open
	sent     uint64          // commands written (a sequence number)
	inflight []uint64        // commands written on conn, not yet answered
	acked    uint64          // the last command answered
	ackCh    chan struct{}   // closed at the next ack (nil: nobody waits)
	running  bool            // run's goroutine runs
	closed   bool

	wake []*Subscriber // run's: subscribers whose queue became non-empty
}

// NewHub returns an idle Hub: no goroutine, no connection until a
// client listens.
func NewHub(opt Options) *Hub {
	if opt.Check <= 0 {
		opt.Check = time.Second
	}
	if opt.Retry <= 0 {
		opt.Retry = time.Second
	}
	h := &Hub{opt: opt}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// Subscriber is one client's side of a Hub: the channels it listens to
// (guarded by the Hub's mu) and its queue (its own mu). wake is called,
// on the Hub's goroutine and without its locks, when the queue goes from
// empty to not empty: the client's owner then Takes the queue when the
// client is between messages.
type Subscriber struct {
	hub      *Hub
	wake     func()
	max      int
	channels map[string]struct{}

	mu      sync.Mutex
	q       Queue
	pending bool
}

// NewSubscriber makes a client's subscriber, whose queue holds at most
// max notifications.
func (h *Hub) NewSubscriber(max int, wake func()) *Subscriber {
	return &Subscriber{hub: h, wake: wake, max: max}
}

// Pending reports whether notifications are queued.
func (s *Subscriber) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Take empties the queue: the messages to write, oldest first, and how
// many were dropped since the last Take (the client is told).
func (s *Subscriber) Take() (frames [][]byte, dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = false
	return s.q.Take()
}

// push queues frame; first: the queue was empty (wake the client).
func (s *Subscriber) push(frame []byte) (first, dropped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first = !s.pending
	s.pending = true
	return first, s.q.Push(frame, s.max)
}

// Change applies what a client's transaction did to its channels and
// returns the command to Wait for before the client is told its
// transaction ended (0: none), so that a client whose LISTEN returned
// gets every notification committed after it, as from PostgreSQL.
func (h *Hub) Change(s *Subscriber, c Change) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.UnlistenAll {
		for ch := range s.channels {
			h.reg.Unlisten(s, ch)
		}
		s.channels = nil
	}
	for _, ch := range c.Unlisten {
		if _, ok := s.channels[ch]; ok {
			delete(s.channels, ch)
			h.reg.Unlisten(s, ch)
		}
	}
	for _, ch := range c.Listen {
		if s.channels == nil {
			s.channels = map[string]struct{}{}
		}
		s.channels[ch] = struct{}{}
		h.reg.Listen(s, ch)
	}
	if len(s.channels) == 0 {
		s.channels = nil
	}
	return h.syncLocked()
}

// Leave forgets a client that is gone.
func (h *Hub) Leave(s *Subscriber) {
	h.Change(s, Change{UnlistenAll: true})
	s.Take()
}

// Channels is the union of the channels listened to, sorted.
func (h *Hub) Channels() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reg.Channels()
}

// syncLocked makes the listener connection follow the union (h.mu
// held): starts run when someone listens, writes the LISTEN/UNLISTEN
// the union needs, or wakes run to close the connection when nobody
// listens. It returns the command that makes the union true (0: true
// already).
func (h *Hub) syncLocked() uint64 {
	switch {
	case h.closed:
		return 0
	case h.reg.Len() > 0 && !h.running:
		h.running = true
		h.wg.Add(1)
		go h.run()
		return h.sent + 1 // run's first command LISTENs to the union
	case h.conn == nil:
		if h.reg.Len() == 0 {
			return 0
		}
		return h.sent + 1 // run is dialling: its first command LISTENs to the union
	case h.reg.Len() == 0:
		h.conn.SetReadDeadline(time.Unix(1, 0)) // run closes the connection
		return 0
	}
	listen, unlisten := h.reg.Diff(h.have)
	if len(listen)+len(unlisten) == 0 {
		if len(h.inflight) > 0 {
			return h.inflight[len(h.inflight)-1] // the channel's LISTEN is on its way
		}
		return 0
	}
	if err := h.sendLocked(listen, unlisten); err != nil {
		h.conn.SetReadDeadline(time.Unix(1, 0)) // run reconnects and re-LISTENs
		return h.sent + 1
	}
	return h.sent
}

// sendLocked writes the command that LISTENs and UNLISTENs (h.mu held).
func (h *Hub) sendLocked(listen, unlisten []string) error {
	h.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := h.conn.Send(&pgproto3.Query{String: Command(listen, unlisten)}); err != nil {
		return err
	}
	h.sent++
	h.inflight = append(h.inflight, h.sent)
	for _, ch := range listen {
		h.have[ch] = true
	}
	for _, ch := range unlisten {
		delete(h.have, ch)
	}
	return nil
}

// Wait waits until command seq was answered (the listener listens to
// what it asked), ctx ends or the Hub closes.
func (h *Hub) Wait(ctx context.Context, seq uint64) error {
	for {
		h.mu.Lock()
		if seq == 0 || h.acked >= seq || h.closed {
			h.mu.Unlock()
			return nil
		}
		if h.ackCh == nil {
			h.ackCh = make(chan struct{})
		}
		ch := h.ackCh
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the Hub: the listener connection is closed and run ends
// (waited for). Subscribers are left as they are; nothing is delivered
// any more.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	if h.conn != nil {
		h.conn.SetReadDeadline(time.Unix(1, 0))
	}
	h.ackLocked(h.sent)
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

func (h *Hub) ackLocked(seq uint64) {
	h.acked = max(h.acked, seq)
	if h.ackCh != nil {
		close(h.ackCh)
		h.ackCh = nil
	}
}

// stopLocked reports whether run should end (h.mu held).
func (h *Hub) stopLocked() bool { return h.closed || h.reg.Len() == 0 }

// Leave forgets the subscriber's client, which is gone.
func (s *Subscriber) Leave() { s.hub.Leave(s) }

// Channels is what the client listens to, sorted (an upgrade carries
// them to the new process).
func (s *Subscriber) Channels() []string {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return slices.Sorted(maps.Keys(s.channels))
}
