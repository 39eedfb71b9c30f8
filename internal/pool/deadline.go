package pool

import (
	"context"
	"errors"
	"time"
)

// Deadline is the one time limit of a borrow: the wait in the queue and
// the dial of a new connection (the dial function's retries, and whatever
// it waits for, such as a primary after a failover) together end at it.
// The zero value means "not fixed yet": the pool fixes it at
// now + BorrowTimeout the first time the borrow has to wait or dial, so
// taking an idle connection never reads the clock. A caller that borrows
// through several acquisitions (trying another server, or skipping a
// connection it cannot use) passes the same Deadline to each, so they
// share one limit. It is a plain value owned by the caller, usually on
// its stack; the pool keeps no reference to it.
type Deadline struct {
	at time.Time
	// since is when the borrow first had to wait or dial (zero while it
	// has not): what the borrow's wait is measured from, with no clock
	// read for a borrow that took an idle connection.
	since time.Time
}

// At returns the time the borrow ends; zero while it is not fixed, and
// always with BorrowTimeout 0 (see Config.BorrowTimeout).
func (d *Deadline) At() time.Time { return d.at }

// Since returns when the borrow first had to wait in the queue or dial a
// connection; zero if every acquisition so far took an idle connection
// at once (its wait is then 0 for metrics).
func (d *Deadline) Since() time.Time { return d.since }

// UnreachableError is returned when BorrowTimeout passed while the pool
// was failing to open connections: the connections counted against
// MaxSize were not busy serving clients, and the last attempt to open one
// failed with Last. It matches ErrExhausted (the borrow timed out) and
// Last (errors.Is/As see both), so callers that only ask "did the borrow
// time out?" need not know it.
type UnreachableError struct{ Last error }

func (e *UnreachableError) Error() string {
	return "pool: no connection within borrow_timeout; the last attempt to open one failed: " + e.Last.Error()
}

func (e *UnreachableError) Unwrap() []error { return []error{ErrExhausted, e.Last} }

// fixDeadlineLocked fixes d at now + BorrowTimeout unless it is already
// fixed or BorrowTimeout is 0 (then the dial is bounded by its own
// retries only), and returns it. The first call also notes now as the
// start of the borrow's wait (Since).
func (p *Pool[C]) fixDeadlineLocked(d *Deadline) time.Time {
	if !d.since.IsZero() {
		return d.at
	}
	d.since = time.Now()
	if d.at.IsZero() && p.cfg.BorrowTimeout > 0 {
		d.at = d.since.Add(p.cfg.BorrowTimeout)
	}
	return d.at
}

// timeoutLocked counts a borrow that timed out and says why: every
// connection busy (ErrExhausted), or the server unreachable.
func (p *Pool[C]) timeoutLocked() error {
	p.timeouts.Add(1)
	if p.lastDialErr != nil {
		return &UnreachableError{Last: p.lastDialErr}
	}
	return ErrExhausted
}

// NoteDialFailure is told of every failed attempt of a dial in progress
// (backend.Options.Attempted), so that a client whose borrow_timeout
// passes in the queue while the dial for it is still retrying learns
// why (the server refuses, say) instead of "all connections busy": the
// dial itself reports only when it ends, often just after the queued
// client's time ran out. A dial that then succeeds clears it.
func (p *Pool[C]) NoteDialFailure(err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	p.noteDialLocked(err)
	p.mu.Unlock()
}

// noteDialLocked remembers the outcome of a dial for timeoutLocked. A
// dial that ended only because its caller's context did (no attempt
// failed on its own) says nothing about the server and is not kept.
//
// A timeout does not replace an error the server itself gave (a refused
// connection, a FATAL): under load, or for a waiter granted the slot with
// little time left, the borrow's deadline cuts an attempt short before
// the server could answer, and "i/o timeout" would then hide the reason
// every client of the pool needs to see.
func (p *Pool[C]) noteDialLocked(err error) {
	switch {
	case err == nil:
		p.lastDialErr = nil
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
	case isTimeout(err) && p.lastDialErr != nil && !isTimeout(p.lastDialErr):
	default:
		p.lastDialErr = err
	}
}

// isTimeout reports a network timeout (net.Error's Timeout) anywhere in
// err's chain, without importing net.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
