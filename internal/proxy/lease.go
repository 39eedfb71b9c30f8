package proxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
)

// lease is a server connection borrowed from its pool (entry). Who owns
// the connection when:
//
//   - from acquire until end, the lease's holder owns it: one session's
//     goroutine in session mode; in transaction mode the attachment, whose
//     run goroutine reads the server and ends the lease when it detaches,
//     while the client goroutine only writes to it under the
//     attachment's lock;
//   - end hands it back: to the pool (Release), or to nobody (Discard
//     closes it). After end the holder must not use the connection
//     again (reading its Addr and PID for a log line is fine).
//
// Every way a borrow finishes goes through end, so that none can forget
// a step: discarding a connection a cancel was sent through, cleaning it
// (ROLLBACK or DISCARD ALL), closing it when cleaning fails, and closing
// it when its server no longer qualifies for the pool (an old primary
// after a failover, a standby that fell behind). The idea is PgDog's
// Guard, which returns a connection when dropped. A lease is a value
// (two pointers): the attachment embeds it, so borrowing allocates
// nothing.
type lease struct {
	entry *poolEntry
	conn  *backend.Conn
}

// leaseOutcome is the state the holder leaves the connection in.
type leaseOutcome uint8

const (
	// leaseIdle: idle outside a transaction with nothing set on it that
	// the next holder must not see; reusable as it is.
	leaseIdle leaseOutcome = iota
	// leaseInTx: idle inside a transaction (status 'T' or 'E') with no
	// session state: ROLLBACK, then reusable.
	leaseInTx
	// leaseDirty: the holder changed session state (SET, prepared
	// statements, temporary tables...) or ran a whole session on it:
	// DISCARD ALL (after ROLLBACK when in a transaction), then reusable.
	leaseDirty
	// leaseLost: its state is unknown (a request still running, a
	// message half sent) or the connection failed: closed.
	leaseLost
)

// txOutcome is the outcome of a transaction-pooled connection whose
// client is idle at a ReadyForQuery with status.
func txOutcome(status byte, pinned bool) leaseOutcome {
	switch {
	case pinned:
		return leaseDirty
	case status != 'I':
		return leaseInTx
	}
	return leaseIdle
}

// leaseAction is what end does with the connection.
type leaseAction uint8

const (
	leaseRelease         leaseAction = iota // back to the pool as it is
	leaseCleanAndRelease                    // ROLLBACK / DISCARD ALL first; closed if that fails
	leaseDiscard                            // closed
)

// endAction decides how a lease ends. A connection a cancel was sent
// through is closed whatever its state: PostgreSQL acts on a cancel
// whenever it arrives, so a late one would stop the next holder's query.
// One whose server no longer qualifies (usable false) is closed rather
// than cleaned for a pool that would never hand it out again.
func endAction(o leaseOutcome, cancelled, usable bool) leaseAction {
	switch {
	case o == leaseLost || cancelled || !usable:
		return leaseDiscard
	case o == leaseIdle:
		return leaseRelease
	}
	return leaseCleanAndRelease
}

// end finishes the borrow (see lease). status is the transaction status
// of the connection's last ReadyForQuery ('I' when unknown and o is not
// leaseInTx or leaseDirty); cancelled is whether a cancel request was
// sent through it (session.cancelSent). Cleaning waits up to 10 s, so
// end may block that long; it never blocks otherwise. end leaves conn
// set, for logging its address and pid: the attachment's client goroutine
// may still read the field (it finds the attachment detached and stops).
func (l *lease) end(log *slog.Logger, o leaseOutcome, status byte, cancelled bool) {
	e, conn := l.entry, l.conn
	if db := e.db.Load(); db != nil && db.PoolMode != config.PoolSession && !conn.Borrowed.IsZero() {
		// Transaction mode: the borrow was one transaction (or a pin).
		e.stats.TransactionHeld(time.Since(conn.Borrowed))
	}
	switch endAction(o, cancelled, e.usable(conn)) {
	case leaseRelease:
		e.pool.Release(conn)
		return
	case leaseDiscard:
		if cancelled {
			log.Debug("server connection was sent a cancel; closing it rather than reusing it", "pid", conn.PID)
		}
		e.pool.Discard(conn)
		return
	}
	ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
	var err error
	if o == leaseDirty {
		// DISCARD ALL returns every setting to the connection's startup
		// values, which are its holder's (settings affinity), so the next
		// session with the same parameters needs nothing.
		err = conn.Reset(ctx, status)
	} else {
		err = conn.Rollback(ctx)
	}
	done()
	switch {
	case err != nil:
		log.Warn("server connection failed clean-up; closing it", "server", conn.Addr, "pid", conn.PID, "error", err)
		e.pool.Discard(conn)
	case !e.usable(conn):
		e.pool.Discard(conn) // the primary moved while cleaning: never reuse the old one
	default:
		e.pool.Release(conn)
	}
}

// cancelSent reports whether a cancel request was sent through the
// session's current server connection, after waiting for any still in
// flight, and clears the record. The caller has already detached the
// connection (ss.server nil), so no new cancel can reach it.
func (ss *session) cancelSent() bool {
	ss.mu.Lock()
	cancelled := ss.cancelled
	ss.cancelled = false
	ss.mu.Unlock()
	ss.cancelling.Wait()
	return cancelled
}
