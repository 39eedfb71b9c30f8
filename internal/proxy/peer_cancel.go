package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/peercancel"
)

// CancelPeers is what the proxy needs to know of the fleet it belongs to
// for a CancelRequest to work whichever instance it reaches (the cluster
// member implements it). Without one (nil, the default) sluice is a single
// instance and handles every cancel itself, as always.
type CancelPeers interface {
	// PeerID is this instance's number, 1..16383, unique among the live
	// instances; every cancel key the instance issues carries it.
	PeerID() uint16
	// PeerAddress is a live peer's advertised host:port (its client
	// listener), or false when no live instance has that number.
	PeerAddress(id uint16) (addr string, ok bool)
	// Secret is the fleet's shared secret (32 bytes), which seals the
	// cancels one instance forwards to another.
	Secret() []byte
}

const (
	// maxForwardsInFlight bounds the cancels being forwarded at once: a
	// CancelRequest beyond it is dropped (and counted), so a flood of
	// cancels for other instances' keys holds at most this many sockets
	// to peers.
	maxForwardsInFlight = 64
	// defaultForwardTimeout bounds one forward: dial, send, and the
	// peer's close.
	defaultForwardTimeout = 2 * time.Second
)

// forwardTimeout is defaultForwardTimeout, but for tests that hold
// forwards in flight on purpose.
var forwardTimeout atomic.Int64

func init() { forwardTimeout.Store(int64(defaultForwardTimeout)) }

// fleetCancel is the fleet's side of cancel handling.
type fleetCancel struct {
	peers    CancelPeers
	replays  peercancel.Replays
	inFlight chan struct{} // one token per forward being sent
	lastWarn atomic.Int64  // when a failed forward was last logged as a warning, Unix ns
}

// SetCancelPeers makes this instance a member of a fleet (nil: a single
// instance again). Keys issued from then on carry p.PeerID(); keys issued
// before stay valid here. It may be called at any time.
func (s *Server) SetCancelPeers(p CancelPeers) {
	if p == nil {
		s.fleet.Store(nil)
		return
	}
	s.fleet.Store(&fleetCancel{peers: p, inFlight: make(chan struct{}, maxForwardsInFlight)})
}

// sessionPID is the process ID a session-mode client is shown: the
// server's own, or, in a fleet, one of sluice's that names the instance
// (as PgBouncer always does), since a key must say where to forward it.
func (s *Server) sessionPID(conn *backend.Conn) uint32 {
	if s.fleet.Load() != nil {
		return s.nextPID()
	}
	return conn.PID
}

// fleetPID is the next process ID in a fleet's layout, or false outside a
// fleet (or with a peer number out of range).
func (s *Server) fleetPID() (uint32, bool) {
	fl := s.fleet.Load()
	if fl == nil {
		return 0, false
	}
	peer := fl.peers.PeerID()
	if peer == 0 || peer > peercancel.MaxPeer {
		return 0, false
	}
	return peercancel.PID(peer, s.pids.Add(1)), true
}

// forwardToPeer sends a CancelRequest whose key another instance issued
// to that instance, and reports false when the key names no other
// instance (it is then unknown). It runs on the goroutine of the client
// connection that carried the cancel, and returns when the peer has acted
// (or forwardTimeout passed): as with PostgreSQL, whose cancel connection
// closes once the backend was signalled, the client learns the cancel
// was delivered when its connection closes, and does not send its next
// query while the cancel could still hit it (a forward left running
// behind a closed connection cancelled clients' next queries in
// TestFleetCancelAnywhere). No goroutine is started: a flood of cancels
// costs client connections, bounded by max_client_connections, and at
// most maxForwardsInFlight of them dial a peer at a time.
func (s *Server) forwardToPeer(pid uint32, secret []byte) bool {
	fl := s.fleet.Load()
	if fl == nil || len(secret) != 4 {
		return false
	}
	peer, ok := peercancel.PeerOf(pid)
	self := fl.peers.PeerID()
	if !ok || peer == self {
		return false
	}
	sent := s.metrics.PeerCancelsSent
	addr, ok := fl.peers.PeerAddress(peer)
	if !ok {
		sent.WithLabelValues("peer_unknown").Inc()
		s.log.Debug("cancel request for an instance that is not live ignored", "pid", pid, "peer", peer)
		return true
	}
	select {
	case fl.inFlight <- struct{}{}:
	default:
		sent.WithLabelValues("overloaded").Inc()
		s.log.Debug("cancel request not forwarded: too many forwards in flight", "peer", peer, "limit", maxForwardsInFlight)
		return true
	}
	defer func() { <-fl.inFlight }()
	f := peercancel.Forward{Sender: self, PID: pid, Secret: [4]byte(secret), UnixMilli: time.Now().UnixMilli()}
	rand.Read(f.Nonce[:])
	pkt, err := peercancel.Seal(nil, fl.peers.Secret(), f)
	result := "no_secret"
	if err == nil {
		result, err = s.sendForward(addr, pkt)
	}
	sent.WithLabelValues(result).Inc()
	if err != nil {
		level := slog.LevelDebug
		if fl.warnNow() {
			level = slog.LevelWarn
		}
		s.log.Log(context.Background(), level, "forwarding a cancel request to its instance failed (further failures within 10 s are logged at debug level)",
			"peer", peer, "address", addr, "result", result, "error", err)
	}
	return true
}

// warnNow reports whether a failed forward may be logged as a warning:
// once per 10 s, since a client can make forwards fail as often as it
// likes (cancels for a peer that is down); the metric counts them all.
func (fl *fleetCancel) warnNow() bool {
	now := time.Now().UnixNano()
	last := fl.lastWarn.Load()
	return now-last >= int64(10*time.Second) && fl.lastWarn.CompareAndSwap(last, now)
}

// sendForward delivers one sealed forward to addr and waits for the peer
// to close the connection, as it does once it has acted on it (libpq
// waits so for a CancelRequest too): "ok" means the peer took it.
func (s *Server) sendForward(addr string, pkt []byte) (string, error) {
	ctx, cancel := context.WithTimeout(s.bgCtx, time.Duration(forwardTimeout.Load()))
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "dial_error", err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := c.Write(pkt); err != nil {
		return "send_error", err
	}
	var b [1]byte
	if _, err := c.Read(b[:]); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("the peer answered a forwarded cancel")
		}
		return "send_error", err
	}
	return "ok", nil
}

// receiveForwarded acts on a cancel another instance forwarded (body:
// the packet from its code on) and reports false outside a fleet. It
// cancels only here, never forwards again: a forward cannot loop. A
// forward that fails its checks is dropped, counted and logged at debug
// level (a cancel has no answer; the log must not be an attacker's to
// fill).
func (s *Server) receiveForwarded(body []byte, remote string) bool {
	fl := s.fleet.Load()
	if fl == nil {
		return false
	}
	received := s.metrics.PeerCancelsReceived
	now := time.Now().UnixMilli()
	f, err := peercancel.Open(fl.peers.Secret(), body)
	switch {
	case err != nil:
		received.WithLabelValues("bad_mac").Inc()
		s.log.Debug("forwarded cancel refused", "remote", remote, "error", err)
	case !peercancel.Fresh(f.UnixMilli, now):
		received.WithLabelValues("stale").Inc()
		s.log.Debug("forwarded cancel refused: stale (or the clocks differ by more than 30 s)", "remote", remote, "peer", f.Sender,
			"age", time.Duration(now-f.UnixMilli)*time.Millisecond)
	case !fl.replays.Check(f, now):
		received.WithLabelValues("replayed").Inc()
		s.log.Debug("forwarded cancel refused: replayed", "remote", remote, "peer", f.Sender)
	default:
		sess := s.cancels.lookup(f.PID, f.Secret[:])
		if sess == nil {
			received.WithLabelValues("unknown_key").Inc()
			s.log.Debug("forwarded cancel for unknown session ignored", "peer", f.Sender, "pid", f.PID)
			return true
		}
		received.WithLabelValues("ok").Inc()
		sess.sendCancel("cancel request forwarded by peer")
	}
	return true
}
