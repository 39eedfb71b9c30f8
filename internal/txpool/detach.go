package txpool

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// The ways an attachment ends, all on run's goroutine: detach at an idle
// point, cleanup when the client left, serverLost when the server
// connection failed. Each ends the attachment's lease (lease.go), which
// decides whether the connection goes back to the pool.

// detach ends the attachment at an idle point, or keeps it when the
// client's session now holds state that cannot move (it returns true
// then). Settings and pins are read from the server when the client may
// have changed them.
func (a *attachment) detach() (stay bool) {
	c := a.client
	a.mu.Lock()
	snap, load := a.TakeEffects()
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
			a.serverLost(err)
			return false
		}
		pins = p
		c.Want = cloneSettings(a.tx.Settings)
	}
	if c.Load && len(pins) == 0 || c.Load && pins[len(pins)-1] != backend.PinLoad {
		pins = append(pins, backend.PinLoad)
	}
	c.setPins(pins)
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
	return false
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
