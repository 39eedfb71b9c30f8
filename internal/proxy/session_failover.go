package proxy

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/txpool"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// newRelay attaches conn, borrowed from e, to the session and prepares a
// relay for it; nil when the session was terminated meanwhile.
func (ss *session) newRelay(db *config.Database, e *poolEntry, conn *backend.Conn) *relay {
	s := ss.srv
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.terminated {
		return nil
	}
	ss.server, ss.cancelled = conn, false
	r := &relay{client: ss.client, server: conn.Conn, bufs: s.buffers(db.Backend.ReceiveChunkSize), log: s.log,
		bytesUp: addCounter(s.metrics.BytesClientToSrv), bytesDown: addCounter(s.metrics.BytesSrvToClient), stats: e.stats,
		limits: relayLimits{
			sendDeadline:    db.Backend.SendDeadline.D(),
			receiveDeadline: db.Backend.ReceiveDeadline.D(),
			receiveTimeout:  db.Backend.ReceiveTimeout.D(),
			clientIdle:      s.state.Load().cfg.Limits.ClientIdleTimeout.D(),
			maxBody:         maxBody(s.state.Load().cfg.Limits.MaxMessageSize),
			cancel:          func() { ss.sendCancel("receive_timeout") },
		}}
	r.txStatus.Store('I')
	r.holdFatal = db.Hosts != nil && len(db.Hosts) > 1 // only where canContinue may go on
	ss.relay = r
	if s.handOff.active.Load() && !ss.handOffStay.Load() {
		r.askHandOff() // an upgrade's hand-off runs: pause at once (relay_handoff.go)
	}
	return r
}

// canContinue reports whether a session-mode client whose server
// connection was lost can go on over a new one: only for a database with
// several servers (a failover), and only when the client was idle outside
// a transaction with every request answered and nothing half sent, so no
// statement of its was in flight. A client inside a transaction or with a
// request running gets 08006 and is disconnected (afterRelay): its work
// may or may not have committed.
func (ss *session) canContinue(r *relay, e *poolEntry) bool {
	if e.topo == nil || r.terminated || !r.serverFirst.Load() || r.shutdown.Load() || ss.isTerminated() {
		return false
	}
	return byte(r.txStatus.Load()) == 'I' && !r.owed() && r.clean() && r.up.AtBoundary()
}

// continueOnNewServer replaces a lost server connection for an idle
// session-mode client: it waits (up to borrow_timeout) for a connection
// to the writable primary, applies the client's startup settings, and
// tells the client in a NoticeResponse that its session state (SETs made
// since login, prepared statements, temporary tables) is gone. nil: the
// client has been told why the session ends.
func (ss *session) continueOnNewServer(ctx context.Context, db *config.Database, e *poolEntry, old *backend.Conn, set *backend.StartupSet) (*backend.Conn, *relay) {
	s := ss.srv
	ss.mu.Lock()
	ss.server, ss.relay = nil, nil
	ss.mu.Unlock()
	(&txpool.Lease{Home: e, Conn: old}).End(s.log, txpool.LeaseLost, 'I', ss.cancelSent())
	s.log.Warn("server connection lost while the session was idle; continuing on a new one",
		"database", db.Name, "remote", ss.remote(), "old_server", old.Addr, "old_pid", old.PID)
	conn, err := e.acquire(ctx)
	if err != nil {
		ss.failAcquire(db, err)
		return nil, nil
	}
	if err := ss.applyStartup(ctx, conn, set); err != nil {
		(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseLost, 'I', false)
		ss.fail(wire.CodeConnectionFailure, "could not prepare a new server connection: "+err.Error())
		return nil, nil
	}
	r := ss.newRelay(db, e, conn)
	if r == nil {
		(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseIdle, 'I', false) // never attached: no cancel reached it
		return nil, nil
	}
	notice := &pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: wire.CodeConnectionFailure,
		Message: "the connection to the database server was lost while this session was idle; it continues on a new server connection (" + conn.Addr + ")",
		Detail:  "Settings made with SET since login, prepared statements, temporary tables and other session state are gone; startup parameters were applied again."}
	ss.client.SetWriteDeadline(time.Now().Add(time.Second))
	if err := wire.Write(ss.client, notice); err != nil {
		ss.mu.Lock()
		ss.server, ss.relay = nil, nil
		ss.mu.Unlock()
		(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseIdle, 'I', ss.cancelSent())
		return nil, nil
	}
	ss.client.SetWriteDeadline(time.Time{})
	return conn, r
}

// maxBody turns limits.max_message_size (counted as the length field
// counts, body + 4) into a wire.Scanner bound; 0 (unset) is none.
func maxBody(maxMessageSize int) uint32 {
	if maxMessageSize <= 4 {
		return 0
	}
	return uint32(maxMessageSize - 4)
}
