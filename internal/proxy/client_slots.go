package proxy

import (
	"container/list"
	"fmt"
	"sync"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// clientSlots counts every open client socket, logged in or not, against
// limits.max_client_connections, from the moment it is accepted: sockets
// that never send a startup packet hold a descriptor and memory too, and
// were once uncounted (21,000 silent sockets ran sluice out of
// descriptors).
//
// When every slot is taken, a new socket takes the slot of the oldest
// socket that has not logged in yet, which is told 53300 and closed: a
// flood of silent or stalled sockets then cannot keep real clients out,
// and a client that logs in within the time the flood takes to fill
// max_client_connections is never evicted. Logged-in clients are never
// evicted. When every slot is held by a logged-in client, a few sockets
// beyond the limit (cancelReserve) may still send a CancelRequest, as
// PostgreSQL serves cancels at max_connections; anything else on them is
// refused with 53300 after the startup packet. Beyond those the socket is
// refused at once on the accept loop, without a goroutine. (A flood of
// silent sockets while every slot is logged in can hold the cancel
// reserve for client_login_timeout; ordinary logins are refused then in
// any case.)
//
// Memory: one list element per socket not yet logged in. Lock order:
// clientSlots.mu, then session.mu.
type clientSlots struct {
	mu sync.Mutex
	// open and reserve count the sockets holding an ordinary slot and a
	// cancel-only one.
	open, reserve int
	// pending holds the sessions on ordinary slots that have not logged
	// in, oldest first. Cancel-only slots are never taken over: they end
	// with the startup packet or client_login_timeout.
	pending list.List
}

// slotKind is which kind of slot a session holds.
type slotKind uint8

const (
	slotNone    slotKind = iota
	slotClient           // an ordinary slot
	slotReserve          // cancel requests only
)

// cancelReserve is how many sockets beyond max may wait to send a cancel
// request while every slot is held by a logged-in client: 1% of max,
// at least 1 and at most 16.
func cancelReserve(limit int) int { return min(max(limit/100, 1), 16) }

// admit gives sess a slot under limit (max_client_connections). It returns the session
// that was evicted to make room (nil if none), or ok false if sess must
// be refused at once.
func (c *clientSlots) admit(sess *session, limit int) (evicted *session, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.open < limit:
		c.open++
		sess.slot, sess.pendingAt = slotClient, c.pending.PushBack(sess)
		return nil, true
	case c.pending.Len() > 0:
		evicted = c.evictOldest(&c.pending)
		sess.slot, sess.pendingAt = slotClient, c.pending.PushBack(sess)
		return evicted, true
	case c.reserve < cancelReserve(limit):
		c.reserve++
		sess.slot = slotReserve
		return nil, true
	}
	return nil, false
}

// evictOldest takes the oldest session off l, hands its slot on (the
// caller gives it to the new socket) and makes its next read fail at once.
func (c *clientSlots) evictOldest(l *list.List) *session {
	victim := l.Remove(l.Front()).(*session)
	victim.slot, victim.pendingAt = slotNone, nil
	victim.evict()
	return victim
}

// evictForDescriptor evicts the oldest session that has not logged in,
// if any, when the process is out of descriptors before
// max_client_connections (the open files limit is lower than it): the
// descriptor its goroutine then closes lets the next client in. The
// slot is given back when that session ends.
func (c *clientSlots) evictForDescriptor() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending.Len() == 0 {
		return nil
	}
	victim := c.pending.Remove(c.pending.Front()).(*session)
	victim.pendingAt = nil
	victim.evict()
	return victim
}

// loggedIn records that sess has logged in: it can no longer be
// evicted. It reports false if sess was evicted first, or holds only a
// cancel-only slot; the session must then be refused.
func (c *clientSlots) loggedIn(sess *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sess.slot != slotClient || sess.wasEvicted() {
		return false
	}
	if sess.pendingAt != nil {
		c.pending.Remove(sess.pendingAt)
		sess.pendingAt = nil
	}
	return true
}

// release gives back sess's slot when its socket is closed.
func (c *clientSlots) release(sess *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch sess.slot {
	case slotClient:
		c.open--
		if sess.pendingAt != nil {
			c.pending.Remove(sess.pendingAt)
		}
	case slotReserve:
		c.reserve--
	}
	sess.slot, sess.pendingAt = slotNone, nil
}

// slotIsReserve reports whether sess holds a cancel-only slot.
func (ss *session) slotIsReserve() bool {
	ss.srv.slots.mu.Lock()
	defer ss.srv.slots.mu.Unlock()
	return ss.slot == slotReserve
}

// failTooMany refuses a client that may not log in at the client limit:
// it came in on a cancel-only slot, or was evicted while logging in.
func (ss *session) failTooMany(cfg *config.Config) {
	if ss.wasEvicted() {
		return // end() tells the client
	}
	ss.failAs(reasonTooManyConnections, wire.CodeTooManyConnections,
		fmt.Sprintf("too many client connections (limits.max_client_connections = %d)", cfg.Limits.MaxClientConnections))
}
