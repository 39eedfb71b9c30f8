package proxy

import "sync/atomic"

// poolCounters are a pool's byte totals for SHOW STATS in session mode,
// added once when a session ends (nothing is counted per message).
// Counts and times (transactions, queries, waits, transaction and query
// time) come from the pool's metrics (metrics.PoolMetrics.Totals), in
// both modes. Transaction-mode bytes are not counted per pool (see
// docs/operations.md, "SHOW STATS").
type poolCounters struct {
	received atomic.Uint64 // session mode: bytes from clients, by ended sessions
	sent     atomic.Uint64 // session mode: bytes to clients, by ended sessions
}

// noteSession adds an ended session-mode relay's figures.
func (c *poolCounters) noteSession(r *relay) {
	c.received.Add(uint64(r.bytesIn))
	c.sent.Add(uint64(r.bytesOut.Load()))
}
