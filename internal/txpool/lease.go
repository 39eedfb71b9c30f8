package txpool

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
)

// Lease is a server connection borrowed from its pool (Home). Who owns
// the connection when:
//
//   - from acquire until end, the lease's holder owns it: one session's
//     goroutine in session mode; in transaction mode the attachment, whose
//     reader (the client goroutine inline, or run's goroutine) reads the
//     server and ends the lease when it detaches,
//     while the client goroutine only writes to it under the
//     attachment's lock;
//   - End hands it back: to the pool (Release), or to nobody (Discard
//     closes it). After End the holder must not use the connection
//     again (reading its Addr and PID for a log line is fine).
//
// Every way a borrow finishes goes through End, so that none can forget
// a step: discarding a connection a cancel was sent through, cleaning it
// (ROLLBACK or DISCARD ALL), closing it when cleaning fails, and closing
// it when its server no longer qualifies for the pool (an old primary
// after a failover, a standby that fell behind). The idea is PgDog's
// Guard, which returns a connection when dropped. A Lease is a value
// (an interface and a pointer): the attachment embeds it, so borrowing
// allocates nothing. Session mode (internal/proxy) borrows through it
// too.
type Lease struct {
	Home Home
	Conn *backend.Conn
}

// Home is where a borrowed connection goes back: its pool, which also
// says whether the connection's server still qualifies for it (proxy's
// poolEntry implements it).
type Home interface {
	Release(*backend.Conn)
	Discard(*backend.Conn)
	// Usable reports whether the connection may serve a client: with
	// several hosts only one to the current primary is; in a standby
	// pool only while its host still qualifies.
	Usable(*backend.Conn) bool
	// Parsed is the pool's set of statements known to parse (for
	// txcore.Client.LocalParse).
	Parsed() *txcore.ParsedSet
	// Answered counts ReadyForQuery messages relayed from the pool's
	// connections (queries; transactions: those with status 'I').
	Answered(queries, transactions int)
	// Returned is told of every lease's end, before the connection goes
	// back or is closed (the pool times how long it was held).
	Returned(*backend.Conn)
}

// Outcome is the state the holder leaves the connection in.
type Outcome uint8

const (
	// LeaseIdle: idle outside a transaction with nothing set on it that
	// the next holder must not see; reusable as it is.
	LeaseIdle Outcome = iota
	// LeaseInTx: idle inside a transaction (status 'T' or 'E') with no
	// session state: ROLLBACK, then reusable.
	LeaseInTx
	// LeaseDirty: the holder changed session state (SET, prepared
	// statements, temporary tables...) or ran a whole session on it:
	// DISCARD ALL (after ROLLBACK when in a transaction), then reusable.
	LeaseDirty
	// LeaseLost: its state is unknown (a request still running, a
	// message half sent) or the connection failed: closed.
	LeaseLost
)

// txOutcome is the outcome of a transaction-pooled connection whose
// client is idle at a ReadyForQuery with status.
func txOutcome(status byte, pinned bool) Outcome {
	switch {
	case pinned:
		return LeaseDirty
	case status != 'I':
		return LeaseInTx
	}
	return LeaseIdle
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
func endAction(o Outcome, cancelled, usable bool) leaseAction {
	switch {
	case o == LeaseLost || cancelled || !usable:
		return leaseDiscard
	case o == LeaseIdle:
		return leaseRelease
	}
	return leaseCleanAndRelease
}

// End finishes the borrow (see Lease). status is the transaction status
// of the connection's last ReadyForQuery ('I' when unknown and o is not
// LeaseInTx or LeaseDirty); cancelled is whether a cancel request was
// sent through it (Session.CancelSent). Cleaning waits up to 10 s, so
// End may block that long; it never blocks otherwise. End leaves Conn
// set, for logging its address and pid: the attachment's client goroutine
// may still read the field (it finds the attachment detached and stops).
func (l *Lease) End(log *slog.Logger, o Outcome, status byte, cancelled bool) {
	e, conn := l.Home, l.Conn
	e.Returned(conn)
	switch endAction(o, cancelled, e.Usable(conn)) {
	case leaseRelease:
		e.Release(conn)
		return
	case leaseDiscard:
		if cancelled {
			log.Debug("server connection was sent a cancel; closing it rather than reusing it", "pid", conn.PID)
		}
		e.Discard(conn)
		return
	}
	ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
	var err error
	if o == LeaseDirty {
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
		e.Discard(conn)
	case !e.Usable(conn):
		e.Discard(conn) // the primary moved while cleaning: never reuse the old one
	default:
		e.Release(conn)
	}
}
