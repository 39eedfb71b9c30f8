package txpool

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// The ways an attachment ends, all on its reader's goroutine (the
// client's inline, or run's): detach at an idle point, cleanup when the
// client left, serverLost when the server connection failed. They are
// transaction mode's alone, apart from Lease (lease.go), which every
// borrow shares, session mode's included: each ends the attachment's
// lease (Lease.End), which decides whether the connection goes back to
// the pool; what they decide first (settings and pins read back,
// LISTENs moved, what the client is told) is the attachment's.

// detach ends the attachment at an idle point, or keeps it when the
// client's session now holds state that cannot move (it returns true
// then). Settings and pins are read from the server when the client may
// have changed them.
func (a *attachment) detach() (stay bool) {
	c := a.client
	a.mu.Lock()
	snap, load := a.TakeEffects()
	unlistens := a.TakeUnlistens()
	a.mu.Unlock()
	if load {
		c.Load = true
	}
	pins := c.Pins
	if snap {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := a.Conn.Snapshot(ctx, c.MaxStatements)
		cancel()
		if err != nil {
			a.releaseReady()
			a.serverLost(err)
			return false
		}
		pins = p
		c.Want = cloneSettings(a.tx.Settings)
	}
	if unlistens.Any() || slices.Contains(pins, backend.PinListen) {
		if hub := c.fanOut(); hub != nil {
			p, err := c.moveListens(a, hub, pins, unlistens)
			if err != nil {
				a.releaseReady()
				a.serverLost(err)
				return false
			}
			pins = p
		}
	}
	a.releaseReady() // before the client may send again (detaching still holds it)
	if c.Load && len(pins) == 0 || c.Load && pins[len(pins)-1] != backend.PinLoad {
		pins = append(pins, backend.PinLoad)
	}
	if added := newPins(c.Pins, pins); added != nil && c.sess.RefusePins() {
		a.refusePinned(added)
		return false
	}
	c.setPins(pins, a.Conn.PID)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.detaching = false
	a.cond.Broadcast()
	if len(pins) > 0 {
		a.client.armClientDeadline(a)
		return true
	}
	a.detached = true
	a.clearWakeLocked()
	a.client.sess.DetachServer()
	a.Lease.End(a.client.env.Log, LeaseIdle, 'I', a.client.sess.CancelSent())
	a.client.armClientDeadline(a)
	if sub := c.listen.Load(); sub != nil && sub.Pending() {
		c.notifyWake() // queued during the transaction: the client goroutine writes them now
	}
	return false
}

// newPins returns the reasons in pins that are not in old (nil: none).
func newPins(old, pins []string) []string {
	var added []string
	for _, r := range pins {
		if !slices.Contains(old, r) {
			added = append(added, r)
		}
	}
	return added
}

// refusePinned ends the session of a client whose transaction left state
// that pins (added) although its pool's pin_policy is error: state the
// lexer could not see coming (made by a function, a SET ROLE inside
// another statement...), so the statement already ran. Its connection
// is cleaned (DISCARD ALL) before it goes back to the pool, or closed
// after LOAD, which nothing undoes; the client gets 0A000 and is
// disconnected, rather than keep a server connection the operator
// refused to let it hold, or go on without state it counts on.
func (a *attachment) refusePinned(added []string) {
	c := a.client
	a.mu.Lock()
	a.detached, a.detaching, a.fatal = true, false, true
	a.clearWakeLocked()
	a.cond.Broadcast()
	a.mu.Unlock()
	c.sess.DetachServer()
	outcome := LeaseDirty
	if c.Load {
		outcome = LeaseLost
	}
	a.Lease.End(c.env.Log, outcome, 'I', c.sess.CancelSent())
	msg := wire.Error(wire.CodeFeatureNotSupported, "sluice: the session now holds state that pins it to a server connection (%s), which pool.pin_policy error refuses; the state was discarded and the session ends",
		strings.Join(added, ", "))
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	wire.Write(c.conn, msg)
	c.env.Log.Warn("session ended by sluice: pinned under pin_policy error", "remote", c.sess.Remote(), "database", c.DB.Name,
		"reason", strings.Join(added, ","), "statement", c.pinCause(), "server_pid", a.Conn.PID)
	c.conn.Close()
}

// cleanup handles a client that left while attached; it returns whether
// the connection was left reusable.
func (a *attachment) cleanup() bool {
	a.mu.Lock()
	busy := a.busyLocked()
	status := a.Status
	a.detached = true
	a.cond.Broadcast()
	a.mu.Unlock()
	a.client.sess.DetachServer()
	if busy {
		a.Lease.End(a.client.env.Log, LeaseLost, status, false)
		return false
	}
	a.Lease.End(a.client.env.Log, txOutcome(status, len(a.client.Pins) > 0), status, a.client.sess.CancelSent())
	return true
}

// serverLost ends the attachment after the server connection failed. A
// client idle outside a transaction with nothing pinned keeps its sluice
// connection; any other gets 08006 (or 57P01 when sluice is stopping)
// and is disconnected, since its transaction or session state is gone.
func (a *attachment) serverLost(err error) {
	a.mu.Lock()
	idle := !a.busyLocked() && a.Status == 'I' && len(a.client.Pins) == 0
	a.detached, a.detaching = true, false
	var cw clientWriteError
	clientSide := errors.As(err, &cw)
	a.fatal = !idle || clientSide || err == errStatementMode || a.serverFatal
	a.cond.Broadcast()
	a.mu.Unlock()
	c := a.client
	c.sess.DetachServer()
	a.Lease.End(c.env.Log, LeaseLost, 'I', false)
	if clientSide {
		c.conn.Close()
		return
	}
	if !a.fatal {
		c.env.Log.Info("server connection lost while the client was idle; the client keeps its connection",
			"server", a.Conn.Addr, "pid", a.Conn.PID, "error", err)
		return
	}
	if a.serverFatal && err != errStatementMode && !c.sess.TerminatedBySluice() {
		// The client has the server's FATAL: one error per failure.
		c.env.Log.Info("server ended the session with a FATAL error", "remote", c.sess.Remote(),
			"server", a.Conn.Addr, "pid", a.Conn.PID, "server_error", errString(err))
		c.conn.Close()
		return
	}
	msg := wire.Error(wire.CodeConnectionFailure, "connection to the database server was lost during a transaction; the transaction's outcome is unknown")
	switch {
	case err == errStatementMode:
		msg = wire.Error(wire.CodeFeatureNotSupported, "transactions spanning several statements are not allowed in pool_mode statement; the transaction was rolled back")
	case c.sess.TerminatedBySluice():
		msg = wire.Error(wire.CodeAdminShutdown, "terminating connection because sluice is shutting down")
	case idle:
		msg = wire.Error(wire.CodeConnectionFailure, "connection to the database server was lost; session state held on it (%v) is gone", a.client.Pins)
	}
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	wire.Write(c.conn, msg)
	c.env.Log.Warn("session ended by sluice", "remote", c.sess.Remote(), "sqlstate", msg.Code, "reason", msg.Message, "server_error", errString(err))
	c.conn.Close()
}

func cloneSettings(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil // most clients never SET: no map while idle
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
