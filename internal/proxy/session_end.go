package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/pool"
	"github.com/sluice-proxy/sluice/internal/txpool"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// afterRelay tells the client why the session ends when sluice ends it,
// only at a message boundary: shutdown (57P01), client_idle_timeout
// (57P01), or a lost or unresponsive server (08006). When the server
// ended the connection with a FATAL, the client has that error (relayed
// or held and sent by the caller) and gets nothing more: one error per
// failure, as from PostgreSQL itself.
func (ss *session) afterRelay(r *relay, db *config.Database) {
	if r.terminated || !r.down.AtBoundary() {
		return
	}
	var msg *pgproto3.ErrorResponse
	switch {
	case r.shutdown.Load() && ss.killed.Load():
		msg = wire.Error(wire.CodeAdminShutdown, "terminating connection due to administrator command")
	case r.shutdown.Load():
		msg = wire.Error(wire.CodeAdminShutdown, "terminating connection because sluice is shutting down")
	case r.serverFatal.Load():
		ss.srv.log.Info("server ended the session with a FATAL error", "remote", ss.remote(),
			"server_error", errString(r.downErr))
		return
	case errors.As(r.upErr, new(wire.ErrTooLarge)):
		msg = wire.Error(wire.CodeProgramLimitExceeded, "%v", r.upErr)
	case errors.As(r.upErr, new(wire.ErrLength)):
		msg = wire.Error(wire.CodeProtocolViolation, "invalid frontend message: %v", r.upErr)
	case r.idleTimeout.Load():
		msg = wire.Error(wire.CodeAdminShutdown, "terminating connection due to limits.client_idle_timeout (%s)", ss.srv.state.Load().cfg.Limits.ClientIdleTimeout.D())
	case r.sendFailed && isTimeout(r.upErr):
		msg = wire.Error(wire.CodeConnectionFailure, "the database server did not accept data within backend.send_deadline (%s); connection closed", db.Backend.SendDeadline.D())
	case r.serverFirst.Load() && isTimeout(r.downErr):
		msg = wire.Error(wire.CodeConnectionFailure, "the database server sent nothing within backend.receive_deadline (%s); connection closed", db.Backend.ReceiveDeadline.D())
	case r.serverFirst.Load() || r.sendFailed:
		msg = wire.Error(wire.CodeConnectionFailure, "connection to the database server was lost")
	default:
		return
	}
	ss.client.SetWriteDeadline(time.Now().Add(time.Second))
	wire.Write(ss.client, msg)
	ss.srv.log.Warn("session ended by sluice", "remote", ss.remote(), "sqlstate", msg.Code, "reason", msg.Message,
		"server_error", errString(r.downErr), "client_error", errString(r.upErr))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sessionOutcome is how a session-mode relay left its server connection:
// after a whole session it always needs DISCARD ALL, and it is closed
// when it was left in an unknown state (shutdown mid-message, the server
// ending first, a message half relayed).
func sessionOutcome(r *relay) txpool.Outcome {
	if r.shutdown.Load() || r.serverFirst.Load() || !r.clean() {
		return txpool.LeaseLost
	}
	return txpool.LeaseDirty
}

func (ss *session) failAcquire(db *config.Database, err error) {
	var se *backend.ServerError
	var ce *backend.ConnectError
	var re *routeError
	var ue *pool.UnreachableError
	switch {
	case errors.As(err, &re): // a read-only session no server may take (readonly.go)
		ss.fail(re.code, re.msg, "database", db.Name)
	case ss.killed.Load():
		ss.fail(wire.CodeAdminShutdown, "terminating connection due to administrator command")
	case errors.Is(err, context.Canceled), errors.Is(err, errShuttingDownHeld), errors.Is(err, pool.ErrClosed):
		ss.fail(wire.CodeAdminShutdown, "terminating connection because sluice is shutting down")
	case errors.As(err, &ue):
		// Timed out in the queue while the pool's dials were failing.
		ss.fail(wire.CodeConnectionFailure, fmt.Sprintf("no server connection for database %q within pool.borrow_timeout (%s); the last attempt to connect failed: %v",
			db.Name, db.Pool.BorrowTimeout.D(), ue.Last))
	case errors.Is(err, pool.ErrExhausted):
		ss.fail(wire.CodeTooManyConnections, fmt.Sprintf("no server connection available for database %q within pool.borrow_timeout (%s): all %d are busy",
			db.Name, db.Pool.BorrowTimeout.D(), db.Pool.MaxSize))
	case errors.As(err, &ce) && ce.TimedOut:
		// Dialled for this client until its borrow_timeout.
		ss.fail(wire.CodeConnectionFailure, fmt.Sprintf("could not connect to server %s within pool.borrow_timeout (%s), %d attempt(s): %v",
			ce.Addr, db.Pool.BorrowTimeout.D(), ce.Attempts, ce.Err))
	case errors.As(err, &se):
		se.Response.Severity, se.Response.SeverityUnlocalized = "FATAL", "FATAL"
		ss.client.SetWriteDeadline(time.Now().Add(time.Second))
		wire.Write(ss.client, se.Response)
		ss.srv.log.Warn("server refused login", "database", db.Name, "sqlstate", se.Response.Code, "message", se.Response.Message)
	case errors.As(err, &ce):
		ss.fail(wire.CodeConnectionFailure, ce.Error())
	default:
		ss.fail(wire.CodeConnectionFailure, "could not get a server connection: "+err.Error())
	}
}

// relayLoop relays until the session ends, on a new server connection
// after a failover (continueOnNewServer); it returns the connection and
// relay it ended with (a nil connection: closed, and none other), or
// moved: an upgrade handed the session over with its server connection
// (handOffSession), and nothing of either is left here.
func (ss *session) relayLoop(ctx context.Context, db *config.Database, e *poolEntry, conn *backend.Conn, r *relay,
	set *backend.StartupSet, route *readRoute) (*backend.Conn, *relay, bool) {
	for {
		r.run()
		if r.paused() {
			if ss.handOffSession(r, db, e, conn, set, route) {
				return nil, r, true
			}
			continue
		}
		e.counters.noteSession(r)
		if !ss.canContinue(r, e) {
			if len(r.heldFatal) > 0 { // the server's own reason, then sluice's
				ss.client.SetWriteDeadline(time.Now().Add(time.Second))
				ss.client.Write(r.heldFatal)
			}
			ss.afterRelay(r, db)
			return conn, r, false
		}
		next, nr := ss.continueOnNewServer(ctx, db, e, conn, set)
		conn = next // nil: the old one is closed and there is no new one
		if nr == nil {
			return conn, r, false
		}
		r = nr
	}
}

// endRelay ends a session-mode session: its cancel key, its client
// socket, its server connection back to the pool (or closed).
func (ss *session) endRelay(u *config.User, db *config.Database, e *poolEntry, conn *backend.Conn, r *relay, pid, secret uint32) {
	s := ss.srv
	s.cancels.remove(pid, secret)
	ss.mu.Lock()
	ss.server, ss.relay = nil, nil
	ss.mu.Unlock()
	ss.client.Close()
	cancelled := ss.cancelSent()
	if conn == nil {
		s.log.Info("session ended", "user", u.Name, "database", db.Name, "remote", ss.remote(),
			"duration", time.Since(ss.start).Round(time.Millisecond))
		return
	}
	(&txpool.Lease{Home: e, Conn: conn}).End(s.log, sessionOutcome(r), byte(r.txStatus.Load()), cancelled)
	s.log.Info("session ended", "user", u.Name, "database", db.Name, "remote", ss.remote(),
		"duration", time.Since(ss.start).Round(time.Millisecond), "bytes_in", r.bytesIn, "bytes_out", r.bytesOut.Load(),
		"server_pid", conn.PID)
}
