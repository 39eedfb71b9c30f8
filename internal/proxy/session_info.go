package proxy

import (
	"slices"

	"github.com/sluice-proxy/sluice/internal/config"
	"sync/atomic"
	"time"
)

// sessionIDs numbers client connections for SHOW CLIENTS and KILL_CLIENT:
// an id is never reused while the process lives.
var sessionIDs atomic.Uint64

// clientInfo is what the console shows of a logged-in client; set once
// by the session goroutine at login (under session.mu), read by Snapshot.
type clientInfo struct {
	// database is set when the client names a database sluice serves,
	// before it authenticates (KILL db ends it then too); the rest at
	// login.
	user, database, appName string
	poolMode                config.PoolMode // not for console clients
	loggedIn                bool
	console                 bool // a client of the admin console
}

// pinRecord is why a transaction-pooled client holds its server
// connection between transactions, and since when. Immutable: notePins
// swaps in a new one only when the reasons change.
type pinRecord struct {
	reasons []string
	since   time.Time
	// statement is the beginning of the statement that made the first
	// reason (txcore.Client.PinCause); serverPID the connection's.
	statement string
	serverPID uint32
}

// noteLogin records who the client logged in as, for the console.
func (ss *session) noteLogin(user, database, appName string, poolMode config.PoolMode, console bool) {
	ss.mu.Lock()
	ss.info = clientInfo{user: user, database: database, appName: appName, poolMode: poolMode, loggedIn: true, console: console}
	ss.mu.Unlock()
}

// notePins publishes the client's pin reasons for SHOW PINS. It is
// called at every detach, so the common case (no pins, none before)
// costs one atomic load and allocates nothing; a change of reasons
// allocates one record.
func (ss *session) notePins(pins []string, cause string, serverPID uint32) {
	cur := ss.pins.Load()
	switch {
	case len(pins) == 0 && cur == nil:
		return
	case len(pins) == 0:
		ss.pins.Store(nil)
	case cur != nil && slices.Equal(cur.reasons, pins):
		return
	default:
		rec := &pinRecord{reasons: slices.Clone(pins), since: time.Now(), statement: cause, serverPID: serverPID}
		if cur != nil {
			// Pinned since the first reason, by its statement, whatever came after.
			rec.since, rec.statement = cur.since, cur.statement
		}
		ss.pins.Store(rec)
	}
}

// isConsole reports whether the session is an admin console client.
func (ss *session) isConsole() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.info.console
}
