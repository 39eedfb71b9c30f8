package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/clientstate"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/txpool"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// The upgrade hand-off, the new process's side: AdoptClient serves a
// client another sluice process handed over (handoff.go is the old
// side) as if it had logged in here.

// AdoptClient starts serving a client handed over by another process:
// state as HandOffClients' send got it, files its descriptors (the
// client socket; in session mode also the server connection's). The
// files are AdoptClient's from the call on: it closes them, adopted or
// not (the client's connection lives on in its own descriptor). An error
// means the client was not adopted and nothing of it was kept or said:
// the old process keeps it. The state is untrusted input: it is decoded
// with bounds, and must name a database and user this configuration
// serves, in the same pool mode.
func (s *Server) AdoptClient(state []byte, files []*os.File) error {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	st, err := clientstate.Decode(state)
	if err != nil {
		return err
	}
	cfg := s.state.Load().cfg
	db, u := cfg.Databases[st.Database], cfg.User(st.User)
	switch {
	case db == nil:
		return fmt.Errorf("database %q is not configured here", st.Database)
	case u == nil:
		return fmt.Errorf("user %q is not configured here", st.User)
	case modeByte(db.PoolMode) != st.Mode:
		return fmt.Errorf("database %q is in pool mode %s here, the client was in %q", db.Name, db.PoolMode, st.Mode)
	case st.Mode == clientstate.ModeSession && len(files) != 2:
		return fmt.Errorf("a session-mode client comes with 2 descriptors, not %d", len(files))
	case st.Mode != clientstate.ModeSession && len(files) != 1:
		return fmt.Errorf("a transaction-pooled client comes with 1 descriptor, not %d", len(files))
	}
	if st.Mode == clientstate.ModeSession {
		return s.adoptSession(st, db, u, files[0], files[1])
	}
	saved := make([]txcore.SavedStatement, len(st.Statements))
	for i, p := range st.Statements {
		saved[i] = txcore.SavedStatement{Name: p.Name, Query: p.Query, Params: paramsBytes(p.ParamOIDs), Server: p.Server, SQL: p.SQL}
		if p.SQL {
			saved[i].Params = nil
		}
	}
	want := make(map[string]string, len(st.Settings))
	for _, p := range st.Settings {
		want[p.Name] = p.Value
	}
	nc, err := net.FileConn(files[0])
	if err != nil {
		return err
	}
	nc = wire.NewSocket(nc)
	ss := &session{srv: s, client: nc, start: time.Unix(0, st.StartedUnixNano), id: sessionIDs.Add(1)}
	if err := s.admitAdopted(ss, cfg); err != nil {
		nc.Close()
		return err
	}
	if err := ss.adoptTx(db, u, st, want, saved); err != nil {
		ss.mu.Lock()
		ss.tx = nil
		ss.mu.Unlock()
		ss.end() // closes this process's descriptor only: nothing was said
		s.sessionDone(ss)
		return err
	}
	go s.serveThen(ss)
	return nil
}

// admitAdopted counts an adopted client as a logged-in session here, as
// the accept loop and the login do.
func (s *Server) admitAdopted(ss *session, cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("this sluice is shutting down")
	}
	if _, ok := s.slots.admit(ss, cfg.Limits.MaxClientConnections); !ok || !s.slots.loggedIn(ss) {
		if ok {
			s.slots.release(ss)
		}
		return fmt.Errorf("limits.max_client_connections (%d) reached", cfg.Limits.MaxClientConnections)
	}
	s.sessions[ss] = struct{}{}
	s.sessWG.Add(1)
	s.metrics.ClientConnections.Inc()
	return nil
}

// adoptListenWait bounds how long adopting a listening client waits for
// the pool's listener connection to listen to its channels when the pool
// has no borrow_timeout; past it the client stays on the old process.
const adoptListenWait = 10 * time.Second

// adoptTx makes the txHost of an adopted transaction-pooled client, as
// runTx does at login, with the client's cancel key and the settings
// and statements it had; on success ss.then serves it.
func (ss *session) adoptTx(db *config.Database, u *config.User, st *clientstate.State, want map[string]string, saved []txcore.SavedStatement) error {
	s := ss.srv
	cfg := s.state.Load().cfg
	bs := make([]backend.Setting, len(st.Startup))
	for i, p := range st.Startup {
		bs[i] = backend.Setting{Name: p.Name, Value: p.Value}
	}
	set := backend.NewStartupSet(bs)
	h := &txHost{ss: ss, user: u, entry: s.poolFor(db, u)}
	ctx, cancel := context.WithCancel(context.Background())
	h.Init(txpool.Params{Env: s.txEnv, Session: h, Conn: ss.client, Draining: &ss.draining,
		DB: db, Limits: cfg.Limits, Bufs: s.buffers(db.Backend.ReceiveChunkSize),
		Ctx: backend.WithStartup(ctx, set), Cancel: cancel})
	if err := h.Restore(want, saved, h.entry); err != nil {
		cancel()
		return err
	}
	if !s.cancels.addKey(st.CancelPID, st.CancelSecret, ss) {
		cancel()
		return fmt.Errorf("cancel key of process %d is taken here", st.CancelPID)
	}
	if len(st.Listen) > 0 {
		wait := db.Pool.BorrowTimeout.D()
		if wait <= 0 {
			wait = adoptListenWait
		}
		lctx, lcancel := context.WithTimeout(ctx, wait)
		err := h.RestoreListens(lctx, st.Listen)
		lcancel()
		if err != nil {
			s.cancels.remove(st.CancelPID, st.CancelSecret)
			cancel()
			return fmt.Errorf("listening to its %d channels: %w", len(st.Listen), err)
		}
	}
	ss.keyPID, ss.keySecret = st.CancelPID, st.CancelSecret
	ss.mu.Lock()
	ss.stop, ss.tx = cancel, h
	ss.mu.Unlock()
	ss.noteLogin(u.Name, db.Name, st.AppName, db.PoolMode, false)
	ss.stats = h.entry.stats // a client of the pool until end, as loggedIn does; no login to count
	ss.stats.ClientMovedIn()
	h.Ready()
	ss.then = h.serveThenEnd
	s.log.Info("session adopted from the previous process", "user", u.Name, "database", db.Name, "remote", ss.remote(),
		"prepared_statements", len(saved), "settings", len(want), "channels", len(st.Listen))
	return nil
}
