package proxy

import (
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/pool"
)

// poolCounters are a pool's totals for SHOW STATS, kept with atomics
// where sluice already has the figure at hand: each borrow (one atomic
// add; the clock is read only when the borrow waited or dialled, as the
// pool itself does), and a session-mode session's bytes, queries and
// transactions once, when it ends. Nothing is counted per message.
// Transaction-mode bytes and queries are not counted (see
// docs/operations.md, "SHOW STATS").
type poolCounters struct {
	borrows  atomic.Uint64 // server connection borrows (transaction mode: one per transaction)
	waitNs   atomic.Int64  // time spent in those borrows waiting for a connection
	xacts    atomic.Uint64 // session mode: ReadyForQuery 'I' seen by ended sessions
	queries  atomic.Uint64 // session mode: ReadyForQuery seen by ended sessions
	received atomic.Uint64 // session mode: bytes from clients, by ended sessions
	sent     atomic.Uint64 // session mode: bytes to clients, by ended sessions
}

// noteBorrow records one borrow of e's pool bounded by d. A borrow that
// took an idle connection left d unfixed and waited no time; one that
// waited or dialled had d fixed at its start + borrow_timeout (see
// pool.Deadline), which gives its start back. With borrow_timeout 0 the
// pool never fixes d, and waits are not counted.
func (c *poolCounters) noteBorrow(e *poolEntry, d *pool.Deadline) {
	c.borrows.Add(1)
	at := d.At()
	if at.IsZero() {
		return
	}
	if db := e.db.Load(); db != nil {
		c.waitNs.Add(int64(time.Since(at.Add(-db.Pool.BorrowTimeout.D()))))
	}
}

// noteSession adds an ended session-mode relay's figures.
func (c *poolCounters) noteSession(r *relay) {
	c.xacts.Add(uint64(r.xacts))
	c.queries.Add(uint64(r.gotZ.Load()))
	c.received.Add(uint64(r.bytesIn))
	c.sent.Add(uint64(r.bytesOut.Load()))
}
