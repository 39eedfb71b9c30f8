package txpool

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// How a client leaves: the read deadline that ends an idle wait
// (idle in a transaction, idle outside one, or sluice draining), and the
// error it is told.

// armIdle sets the client's read deadline for the wait ahead.
func (c *Client) armIdle() {
	if a := c.att; a != nil {
		a.mu.Lock()
		c.takeStale()
		c.armClientDeadline(a)
		a.mu.Unlock()
		return
	}
	c.takeStale()
	c.armClientDeadline(nil)
}

// takeStale makes the next arming set the deadline even when it would
// have nothing to clear, after a wait ended on a deadline that no longer
// applies (guarded like deadlineSet).
func (c *Client) takeStale() {
	if c.staleDeadline {
		c.staleDeadline = false
		c.deadlineSet = true
	}
}

// armClientDeadline sets the client read deadline from the state: idle
// in a transaction (idle_transaction_timeout), idle outside one
// (client_idle_timeout), or at once when sluice is draining and the
// client can be let go. a.mu is held when a is not nil. Both loops call
// it (the client's before it waits, the attachment's after a
// ReadyForQuery), always under a.mu, so they never race on it.
func (c *Client) armClientDeadline(a *attachment) {
	live := a != nil && !a.detached
	var d time.Duration
	switch {
	case !live:
		d = c.clientIdle
	case a.busyLocked():
	case a.Status == 'T' || a.Status == 'E':
		d = c.idleTx
	default:
		d = c.clientIdle
	}
	dl := time.Time{}
	if d > 0 {
		dl = time.Now().Add(d)
	}
	if c.draining.Load() && (!live || (!a.busyLocked() && a.Status == 'I')) {
		dl = time.Unix(1, 0)
	}
	if dl.IsZero() && !c.deadlineSet && !c.draining.Load() && !c.has(flagKilled) {
		return // nothing to clear (drain and Kill set one themselves): skip the timer update
	}
	c.deadlineSet = !dl.IsZero()
	c.storeIdleAt(dl)
	c.setReadDeadline(dl)
}

// setReadDeadline sets the client read deadline dl, or a past one when
// the session was killed: Kill sets its flag before its past deadline,
// so whichever of the two settings comes last, the past one stays (an
// arming that read the state before the kill would otherwise undo it).
func (c *Client) setReadDeadline(dl time.Time) {
	c.conn.SetReadDeadline(dl)
	if c.has(flagKilled) {
		c.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// Kill ends the session from outside (the console's KILL and
// KILL_CLIENT; any goroutine): the client's goroutine, woken by a past
// read deadline (a parked client is resumed), leaves at once with
// PostgreSQL's pg_terminate_backend error, whether idle or inside a
// transaction, which is rolled back before its connection goes back to
// the pool (closed when a request was still running: Lease.End). Like
// drain, it only asks: the client's goroutine alone writes to the
// client. A write deadline bounds a write already blocked on a client
// that does not read, which then ends the session without the error.
// The caller also ends the session's waits for a server connection
// (Params.Cancel).
func (c *Client) Kill() {
	c.flags.Or(flagKilled) // before the deadline: see setReadDeadline
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.conn.SetReadDeadline(time.Unix(1, 0))
	c.Wake()
}

// killed reports whether Kill was called.
func (c *Client) killed() bool { return c.has(flagKilled) }

// errKilled is the error a killed client is told.
func errKilled() *pgproto3.ErrorResponse {
	return wire.Error(wire.CodeAdminShutdown, "terminating connection due to administrator command")
}

func (c *Client) storeIdleAt(dl time.Time) {
	if dl.IsZero() {
		c.idleAt.Store(0)
		return
	}
	c.idleAt.Store(dl.UnixNano())
}

// restoreIdle re-arms, on the goroutine a hop moved the client to, the
// read deadline its wait had before the move (the hop sweep's past
// deadline replaced it), so that a client idle timeout fires when it
// would have without the move; a draining client is armed anew.
func (c *Client) restoreIdle() {
	a := c.att
	if a != nil {
		a.mu.Lock()
		defer a.mu.Unlock()
	}
	c.deadlineSet = true // replaces the sweep's past deadline in any case
	if c.draining.Load() {
		c.armClientDeadline(a)
		return
	}
	dl := time.Time{}
	if at := c.idleAt.Load(); at != 0 {
		dl = time.Unix(0, at)
	}
	c.deadlineSet = !dl.IsZero()
	c.setReadDeadline(dl)
}

// onTimeout decides what a client read deadline meant; false ends the
// session (the client has been told why).
func (c *Client) onTimeout() bool {
	live, busy, status := false, false, byte('I')
	if a := c.att; a != nil {
		a.mu.Lock()
		live, busy, status = !a.detached, a.busyLocked(), a.Status
		a.mu.Unlock()
	}
	switch {
	case busy:
		return true
	case c.draining.Load() && status == 'I':
		c.leave(wire.Error(wire.CodeAdminShutdown, "terminating connection because sluice is shutting down"))
	case live && (status == 'T' || status == 'E') && c.idleTx > 0:
		c.leave(wire.Error(wire.CodeIdleInTransactionTimeout, "terminating connection due to idle-in-transaction timeout (limits.idle_transaction_timeout = %s)", c.idleTx))
	case status == 'I' && c.clientIdle > 0:
		c.leave(wire.Error(wire.CodeAdminShutdown, "terminating connection due to limits.client_idle_timeout (%s)", c.clientIdle))
	default:
		return true // a deadline set for a state that has passed
	}
	return false
}

// leave ends the client's session: a live attachment is cleaned up
// first, then msg (if any) is sent.
func (c *Client) leave(msg *pgproto3.ErrorResponse) {
	if a := c.att; a != nil {
		a.mu.Lock()
		if !a.detached {
			a.clientGone = true
			a.wakeLocked()
		}
		a.mu.Unlock()
		<-a.done
	}
	if msg != nil {
		c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		wire.Write(c.conn, msg)
		c.env.Log.Info("session ended by sluice", "remote", c.sess.Remote(), "sqlstate", msg.Code, "reason", msg.Message)
	}
}

// messageRefusal is what a client whose message the framer refused is
// told before its connection closes; nil for other errors.
func messageRefusal(err error) *pgproto3.ErrorResponse {
	var held wire.ErrHeldTooLarge
	var unknown wire.ErrUnknownType
	switch {
	case errors.As(err, new(wire.ErrTooLarge)):
		return wire.Error(wire.CodeProgramLimitExceeded, "%v", err)
	case errors.As(err, &held) && held.Type == 'P':
		return wire.Error(wire.CodeProgramLimitExceeded, "%v; in transaction pooling a prepared statement's text over %d bytes cannot be kept: send it as a simple Query or use session pooling",
			err, wire.MaxHeldParse)
	case errors.As(err, &unknown):
		return wire.Error(wire.CodeProtocolViolation, "%v", err)
	case errors.As(err, &held), errors.As(err, new(wire.ErrLength)), errors.Is(err, txcore.ErrMalformed), errors.Is(err, wire.ErrNoBindNames):
		return wire.Error(wire.CodeProtocolViolation, "invalid frontend message: %v", err)
	}
	return nil
}
