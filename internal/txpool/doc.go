// Package txpool is the transaction-mode engine: after login in pool
// mode transaction or statement, internal/proxy hands the client to a
// Client here, which serves it until it leaves, borrowing a server
// connection for each transaction (an attachment) and giving it back at
// the next idle point.
//
// Two loops move the bytes, and they are the only I/O: the client's
// loop (Client.Serve, serve.go) reads the client, writes its requests
// to the attached server connection and, for a complete request, reads
// the answer itself and ends the borrow (readInline, inline.go); an
// attachment's loop (attachment.run, attach.go), started only when the
// answer is slow or the client stays attached, reads the server, writes
// its answers to the client and ends the borrow (detach, cleanup or
// serverLost, detach.go). One background goroutine per server runs the
// sweeps (sweep.go) that replace per-transaction timers. What the bytes
// mean is decided by the pure core, internal/txpool/txcore.
//
// What the engine needs from the rest of sluice is given to it, never
// imported: the server-wide Env (logger, metrics, test hooks), one
// Session per client (borrowing a connection for it, its cancel
// bookkeeping, telling it why it is refused), and Home, the pool a
// connection goes back to. Lease (lease.go) is the one way any borrow
// of a server connection ends, session mode's included.
package txpool
