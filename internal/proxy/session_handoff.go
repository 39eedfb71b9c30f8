package proxy

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/clientstate"
	"github.com/sluice-proxy/sluice/internal/config"
)

// Session-mode clients in the upgrade hand-off, the old process's side.
// The session goroutine owns its client and server connection
// throughout: when its relay pauses at an idle point (relay_handoff.go)
// it encodes its state, dups both sockets and offers them to the
// hand-off (handOffRun.offer), then waits for the verdict of send, which
// HandOffClients calls on its own goroutine, one client at a time. Moved:
// the session goroutine closes its own descriptors (the server
// connection leaves the pool's count, Discard, without Terminate) and
// ends. Not moved: it resumes the relay, and stays.

// handOffRun is the hand-off in progress (one per Server).
type handOffRun struct {
	active atomic.Bool // a hand-off runs: new relays are asked at once

	mu     sync.Mutex
	offers []*sessionOffer // guarded by mu; taken by HandOffClients
	ready  chan struct{}   // signalled at each offer
}

// sessionOffer is one session-mode client offered to send; its files are
// its session goroutine's, closed by it after the verdict.
type sessionOffer struct {
	state   []byte
	files   []*os.File
	verdict chan error
}

var errHandOffOver = errors.New("the hand-off ended")

// start begins a hand-off: every session-mode relay is asked to pause
// at its next idle point (s.mu is not held).
func (s *Server) startSessionHandOff() <-chan struct{} {
	ho := &s.handOff
	ho.mu.Lock()
	if ho.ready == nil {
		ho.ready = make(chan struct{}, 1)
	}
	ho.active.Store(true)
	ready := ho.ready
	ho.mu.Unlock()
	s.mu.Lock()
	for ss := range s.sessions {
		ss.mu.Lock()
		if r := ss.relay; r != nil && !ss.handOffStay.Load() {
			r.askHandOff()
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	return ready
}

// endSessionHandOff ends it: offers not taken are refused (they stay).
func (s *Server) endSessionHandOff() {
	ho := &s.handOff
	ho.mu.Lock()
	ho.active.Store(false)
	left := ho.offers
	ho.offers = nil
	ho.mu.Unlock()
	for _, o := range left {
		o.verdict <- errHandOffOver
	}
}

// takeSessionOffers returns the offers made since the last call.
func (s *Server) takeSessionOffers() []*sessionOffer {
	ho := &s.handOff
	ho.mu.Lock()
	defer ho.mu.Unlock()
	l := ho.offers
	ho.offers = nil
	return l
}

// offer queues o; false: no hand-off runs.
func (ho *handOffRun) offer(o *sessionOffer) bool {
	ho.mu.Lock()
	defer ho.mu.Unlock()
	if !ho.active.Load() {
		return false
	}
	ho.offers = append(ho.offers, o)
	signal(ho.ready)
	return true
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// handOffSession runs on the session goroutine when its relay paused for
// a hand-off (r.paused). true: the session moved, with conn, and is
// ended here; false: the relay is resumed and the caller runs it again.
func (ss *session) handOffSession(r *relay, db *config.Database, e *poolEntry, conn *backend.Conn, set *backend.StartupSet, route *readRoute) bool {
	s := ss.srv
	if !r.idleForHandOff() {
		r.resume(false) // asked again at its next idle point
		return false
	}
	err := ss.offerSession(db, conn, set, route)
	if err != nil {
		switch {
		case errors.Is(err, errCannotMove):
			s.log.Info("client stays on this process", "remote", ss.remote(), "database", db.Name, "reason", err)
		case !errors.Is(err, errHandOffOver):
			s.log.Warn("client stays on this process", "remote", ss.remote(), "database", db.Name, "reason", err)
		}
		ss.handOffStay.Store(true)
		r.resume(true)
		return false
	}
	ss.mu.Lock()
	ss.server, ss.relay = nil, nil
	ss.mu.Unlock()
	e.Returned(conn)
	e.Discard(conn) // closes this process's descriptor: the server's session lives on in the new process
	s.log.Info("session handed over to the new process", "database", db.Name, "remote", ss.remote(),
		"duration", time.Since(ss.start).Round(time.Millisecond), "server_pid", conn.PID)
	return true
}

// offerSession encodes the session, dups its sockets and waits for
// send's verdict.
func (ss *session) offerSession(db *config.Database, conn *backend.Conn, set *backend.StartupSet, route *readRoute) error {
	s := ss.srv
	ss.mu.Lock()
	info := ss.info
	ss.mu.Unlock()
	if route != nil || ss.isTerminated() || s.state.Load().cfg.User(info.user) == nil {
		return errCannotMove
	}
	h := conn.HandOff()
	st := &clientstate.State{Mode: clientstate.ModeSession, User: info.user, Database: db.Name, AppName: info.appName,
		CancelPID: ss.keyPID, CancelSecret: ss.keySecret, StartedUnixNano: ss.start.UnixNano(), Startup: params(set),
		Server: &clientstate.Server{Addr: h.Addr, Network: h.Network, Address: h.Address, PID: h.PID, Secret: h.Secret,
			Params: mapParams(h.Params), CreatedUnixNano: h.Created.UnixNano(), Opened: params(h.Opened), Applied: mapParams(h.Applied)}}
	b, err := clientstate.Append(nil, st)
	if err != nil {
		return err
	}
	cf, err := dupFile(ss.client, "client")
	if err != nil {
		return err
	}
	defer cf.Close()
	sf, err := dupFile(conn.Conn, "server")
	if err != nil {
		return err
	}
	defer sf.Close()
	o := &sessionOffer{state: b, files: []*os.File{cf, sf}, verdict: make(chan error, 1)}
	if !s.handOff.offer(o) {
		return errHandOffOver
	}
	return <-o.verdict
}

func params(set *backend.StartupSet) []clientstate.Param {
	if set == nil {
		return nil
	}
	out := make([]clientstate.Param, len(set.Settings))
	for i, p := range set.Settings {
		out[i] = clientstate.Param{Name: p.Name, Value: p.Value}
	}
	return out
}

func mapParams(m map[string]string) []clientstate.Param {
	out := make([]clientstate.Param, 0, len(m))
	for k, v := range m {
		out = append(out, clientstate.Param{Name: k, Value: v})
	}
	return out
}
