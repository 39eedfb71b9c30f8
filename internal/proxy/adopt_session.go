package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/clientstate"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/txpool"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// adoptSession adopts a session-mode client with its server connection
// (AdoptClient's; the files are its caller's, closed by it). The server
// connection joins the pool of the client's (database, user) as a busy
// connection (pool.Pool.Adopt), and a session goroutine relays as if the
// client had logged in here; at its end the connection is reset and
// goes back to this process's pool as any other.
func (s *Server) adoptSession(st *clientstate.State, db *config.Database, u *config.User, cf, sf *os.File) error {
	set := startupSet(st.Startup)
	h := backend.Handed{Addr: st.Server.Addr, Network: st.Server.Network, Address: st.Server.Address, PID: st.Server.PID,
		Secret: st.Server.Secret, Params: paramMap(st.Server.Params), Created: time.Unix(0, st.Server.CreatedUnixNano),
		Applied: paramMap(st.Server.Applied)}
	if len(st.Server.Applied) == 0 {
		h.Applied = nil
	}
	if opened := startupSet(st.Server.Opened); opened.Key == set.Key && opened.Key != 0 {
		h.Opened = set // the client's own (settings affinity), shared as at login
	} else if opened.Key != 0 {
		h.Opened = opened
	}
	cnc, err := net.FileConn(cf)
	if err != nil {
		return err
	}
	snc, err := net.FileConn(sf)
	if err != nil {
		cnc.Close()
		return err
	}
	conn := backend.Adopt(wire.NewSocket(snc), h)
	conn.Borrowed = time.Now()
	e := s.poolFor(db, u)
	if err := e.pool.Adopt(conn); err != nil {
		cnc.Close()
		snc.Close()
		return fmt.Errorf("no room for its server connection in the pool: %w", err)
	}
	ss := &session{srv: s, client: wire.NewSocket(cnc), start: time.Unix(0, st.StartedUnixNano), id: sessionIDs.Add(1)}
	fail := func(err error) error {
		e.Discard(conn) // this process's descriptor only
		return err
	}
	if err := s.admitAdopted(ss, s.state.Load().cfg); err != nil {
		ss.client.Close()
		return fail(err)
	}
	if !s.cancels.addKey(st.CancelPID, st.CancelSecret, ss) {
		ss.end()
		s.sessionDone(ss)
		return fail(fmt.Errorf("cancel key of process %d is taken here", st.CancelPID))
	}
	ss.keyPID, ss.keySecret = st.CancelPID, st.CancelSecret
	ss.noteLogin(u.Name, db.Name, st.AppName, db.PoolMode, false)
	ss.stats = e.stats
	ss.stats.ClientMovedIn()
	s.log.Info("session adopted from the previous process", "user", u.Name, "database", db.Name, "remote", ss.remote(),
		"server_pid", conn.PID)
	go func() {
		ss.relayAdopted(db, u, e, conn, set)
		ss.end()
		s.sessionDone(ss)
	}()
	return nil
}

// relayAdopted is run's relaying part for an adopted session (its
// goroutine's): it owns the client and the server connection.
func (ss *session) relayAdopted(db *config.Database, u *config.User, e *poolEntry, conn *backend.Conn, set *backend.StartupSet) {
	ctx, cancel := context.WithCancel(backend.WithStartup(context.Background(), set))
	defer cancel()
	ss.mu.Lock()
	ss.stop = cancel
	ss.mu.Unlock()
	r := ss.newRelay(db, e, conn)
	if r == nil { // terminated meanwhile
		ss.srv.cancels.remove(ss.keyPID, ss.keySecret)
		(&txpool.Lease{Home: e, Conn: conn}).End(ss.srv.log, txpool.LeaseDirty, 'I', false)
		return
	}
	conn, r, moved := ss.relayLoop(ctx, db, e, conn, r, set, nil)
	if moved {
		ss.srv.cancels.remove(ss.keyPID, ss.keySecret)
		return
	}
	ss.endRelay(u, db, e, conn, r, ss.keyPID, ss.keySecret)
}

func startupSet(l []clientstate.Param) *backend.StartupSet {
	bs := make([]backend.Setting, len(l))
	for i, p := range l {
		bs[i] = backend.Setting{Name: p.Name, Value: p.Value}
	}
	return backend.NewStartupSet(bs)
}

func paramMap(l []clientstate.Param) map[string]string {
	m := make(map[string]string, len(l))
	for _, p := range l {
		m[p.Name] = p.Value
	}
	return m
}
