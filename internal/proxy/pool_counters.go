package proxy

import (
	"sync/atomic"
	"time"
)

// poolCounters are a pool's totals for SHOW STATS, kept with atomics
// where sluice already has the figure at hand: waits at each borrow (two
// clock reads per borrow, no lock), and a session-mode session's bytes,
// queries and transactions once, when it ends. Nothing is counted per
// message. Transaction-mode bytes and queries are not counted (see
// docs/operations.md, "SHOW STATS").
type poolCounters struct {
	borrows  atomic.Uint64 // server connection borrows (transaction mode: one per transaction)
	waitNs   atomic.Int64  // time spent in those borrows waiting for a connection
	xacts    atomic.Uint64 // session mode: ReadyForQuery 'I' seen by ended sessions
	queries  atomic.Uint64 // session mode: ReadyForQuery seen by ended sessions
	received atomic.Uint64 // session mode: bytes from clients, by ended sessions
	sent     atomic.Uint64 // session mode: bytes to clients, by ended sessions
}

// noteBorrow records one borrow that started at start.
func (c *poolCounters) noteBorrow(start time.Time) {
	c.borrows.Add(1)
	c.waitNs.Add(int64(time.Since(start)))
}

// noteSession adds an ended session-mode relay's figures.
func (c *poolCounters) noteSession(r *relay) {
	c.xacts.Add(uint64(r.xacts))
	c.queries.Add(uint64(r.gotZ.Load()))
	c.received.Add(uint64(r.bytesIn))
	c.sent.Add(uint64(r.bytesOut.Load()))
}
