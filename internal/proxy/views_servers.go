package proxy

import (
	"crypto/tls"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/console"
)

// SHOW SERVERS' rows: the connections lent to clients (found through the
// sessions), the idle ones (through the pools) and the LISTEN fan-out's
// listener connections (through the pools' hubs), each with what the
// console can tell without a round trip: the server session's
// application_name as sluice last read it, and close_needed.

// serverStateListen is the listener connection's state in SHOW SERVERS:
// neither lent to a client (active) nor available (idle), and outside
// the pool's max_size, so SHOW POOLS' sv_active and sv_idle still count
// exactly the rows in those states.
const serverStateListen = "listen"

func serverView(conn *backend.Conn, database, user, state string) console.Server {
	sv := console.Server{User: user, Database: database, State: state, ConnectTime: conn.Created, PID: conn.PID, Host: conn.Addr,
		AppName: conn.ApplicationName()}
	sv.Addr, sv.Port = addrPort(conn.RemoteAddr())
	sv.LocalAddr, sv.LocalPort = addrPort(conn.LocalAddr())
	if _, isTLS := conn.Conn.(*tls.Conn); isTLS {
		sv.TLS = "TLS"
	}
	return sv
}

// serverHomes finds the pool a lent connection goes back to, to ask it
// whether the connection is retired (close_needed): the (database,
// user) pool, or for a read-only client the standby pool of the
// connection's host.
type serverHomes map[poolKey][]*poolEntry

func newServerHomes(entries []*poolEntry) serverHomes {
	h := serverHomes{}
	for _, e := range entries {
		h[e.key] = append(h[e.key], e)
	}
	return h
}

// retired reports whether conn, lent to a client of the (database,
// user) pool k, is closed when released (RECONNECT, SWITCHOVER, or a
// RELOAD that changed the database's server).
func (h serverHomes) retired(k poolKey, conn *backend.Conn) bool {
	var home *poolEntry
	for _, e := range h[k] {
		switch {
		case e.ro == nil && home == nil:
			home = e
		case e.ro != nil && e.ro.name == conn.Addr:
			home = e
		}
	}
	return home != nil && home.pool.Retired(conn)
}

// listenerView is the row of e's LISTEN fan-out listener connection, if
// it is open.
func listenerView(e *poolEntry) (console.Server, bool) {
	hub := e.hub.Load()
	if hub == nil {
		return console.Server{}, false
	}
	conn := hub.Listener()
	if conn == nil {
		return console.Server{}, false
	}
	sv := serverView(conn, e.key.database, e.key.user, serverStateListen)
	sv.CloseNeeded = e.pool.Retired(conn) // replaced at its next check (listenerDialer.ListenerUsable)
	return sv, true
}
