package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// cancelKey is what a client presents in a CancelRequest: the server PID
// it was shown and the secret sluice issued for that session alone.
type cancelKey struct{ pid, secret uint32 }

// cancelRegistry maps live sessions' keys to the session. Because the
// secret is fresh per session, a former client of a reused server
// connection can never cancel the next client's query.
type cancelRegistry struct {
	mu sync.Mutex
	m  map[cancelKey]*session
}

func (c *cancelRegistry) add(pid uint32, sess *session) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[cancelKey]*session)
	}
	for {
		var b [4]byte
		rand.Read(b[:])
		k := cancelKey{pid, binary.BigEndian.Uint32(b[:])}
		if _, dup := c.m[k]; !dup {
			c.m[k] = sess
			return k.secret
		}
	}
}

// addKey registers a key issued by another process (a client handed
// over by an upgrade keeps the key it knows); false if it is taken.
func (c *cancelRegistry) addKey(pid, secret uint32, sess *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[cancelKey]*session)
	}
	k := cancelKey{pid, secret}
	if _, dup := c.m[k]; dup {
		return false
	}
	c.m[k] = sess
	return true
}

func (c *cancelRegistry) remove(pid, secret uint32) {
	c.mu.Lock()
	delete(c.m, cancelKey{pid, secret})
	c.mu.Unlock()
}

func (c *cancelRegistry) lookup(pid uint32, secret []byte) *session {
	if len(secret) != 4 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[cancelKey{pid, binary.BigEndian.Uint32(secret)}]
}

// cancel forwards a client's CancelRequest to the server its session is
// using right now; in a fleet, a key another instance issued goes to that
// instance (forwardToPeer); after an upgrade, a key this process does not
// know goes to the old process while it drains (forwardToPredecessor).
// Keys issued here are looked up first, so that those issued before
// joining a fleet keep working. Unknown keys are ignored silently, as
// PostgreSQL does.
func (s *Server) cancel(pid uint32, secret []byte) {
	s.metrics.CancelRequests.Inc()
	sess := s.cancels.lookup(pid, secret)
	if sess == nil {
		if !s.forwardToPeer(pid, secret) && !s.forwardToPredecessor(pid, secret) {
			s.log.Debug("cancel request for unknown session ignored", "pid", pid)
		}
		return
	}
	sess.sendCancel("cancel request")
}

// PredecessorCancel hands a CancelRequest this process has no session for
// to the process it took over from in an upgrade, which may still serve
// the client (the daemon implements it over the hand-off socket). It must
// not block: it queues the key, or drops it when its queue is full, and
// returns false once the old process is gone.
type PredecessorCancel func(pid uint32, secret [4]byte) bool

// SetPredecessorCancel sets where cancels for unknown keys go while the
// old process drains after an upgrade (nil: nowhere, once it exited).
func (s *Server) SetPredecessorCancel(f PredecessorCancel) {
	if f == nil {
		s.predecessor.Store(nil)
		return
	}
	s.predecessor.Store(&f)
}

// forwardToPredecessor passes an unknown key to the old process, if one
// drains; false when there is none.
func (s *Server) forwardToPredecessor(pid uint32, secret []byte) bool {
	f := s.predecessor.Load()
	if f == nil || len(secret) != 4 {
		return false
	}
	if !(*f)(pid, [4]byte(secret)) {
		return false
	}
	s.log.Debug("cancel request passed to the process this one took over from", "pid", pid)
	return true
}

// CancelForwarded applies a CancelRequest the new process passed to this
// one after an upgrade, as if it came from the network: a key of a client
// still served here cancels its query; any other is ignored.
func (s *Server) CancelForwarded(pid uint32, secret [4]byte) {
	s.cancel(pid, secret[:])
}
