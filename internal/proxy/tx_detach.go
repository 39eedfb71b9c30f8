package proxy

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
		p, err := a.conn.Snapshot(ctx, c.MaxStatements)
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
	a.ss.detachServer()
	a.lease.end(a.ss.srv.log, leaseIdle, 'I', a.ss.cancelSent())
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
	a.ss.detachServer()
	if busy {
		a.lease.end(a.ss.srv.log, leaseLost, status, false)
		return false
	}
	a.lease.end(a.ss.srv.log, txOutcome(status, len(a.client.Pins) > 0), status, a.ss.cancelSent())
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
	ss := a.ss
	ss.detachServer()
	a.lease.end(ss.srv.log, leaseLost, 'I', false)
	if clientSide {
		ss.client.Close()
		return
	}
	if !a.fatal {
		ss.srv.log.Info("server connection lost while the client was idle; the client keeps its connection",
			"server", a.conn.Addr, "pid", a.conn.PID, "error", err)
		return
	}
	if a.serverFatal && err != errStatementMode && !ss.isTerminated() {
		// The client has the server's FATAL: one error per failure.
		ss.srv.log.Info("server ended the session with a FATAL error", "remote", ss.remote(),
			"server", a.conn.Addr, "pid", a.conn.PID, "server_error", errString(err))
		ss.client.Close()
		return
	}
	msg := wire.Error(wire.CodeConnectionFailure, "connection to the database server was lost during a transaction; the transaction's outcome is unknown")
	switch {
	case err == errStatementMode:
		msg = wire.Error(wire.CodeFeatureNotSupported, "transactions spanning several statements are not allowed in pool_mode statement; the transaction was rolled back")
	case ss.isTerminated():
		msg = wire.Error(wire.CodeAdminShutdown, "terminating connection because sluice is shutting down")
	case idle:
		msg = wire.Error(wire.CodeConnectionFailure, "connection to the database server was lost; session state held on it (%v) is gone", a.client.Pins)
	}
	ss.client.SetWriteDeadline(time.Now().Add(time.Second))
	wire.Write(ss.client, msg)
	ss.srv.log.Warn("session ended by sluice", "remote", ss.remote(), "sqlstate", msg.Code, "reason", msg.Message, "server_error", errString(err))
	ss.client.Close()
}

func cloneSettings(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
