package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/clientstate"
	"github.com/sluice-proxy/sluice/internal/config"
)

// The upgrade hand-off, the old process's side
// (docs/design/upgrade-handoff.md). The process side (internal/handoff,
// `sluice upgrade`) calls HandOffClients once its listeners are handed
// over; AdoptClient (adopt.go) is the new process's side.

// SendClient delivers one client to the new process: its encoded state
// and its descriptors (the client socket first; in session mode the
// server connection's socket second). The files are HandOffClients': send
// must not keep them past its return (SCM_RIGHTS copies them; a test
// passes dups). nil: the new process adopted the client and serves it.
type SendClient = func(state []byte, files []*os.File) error

// handOffRecheck is how often HandOffClients looks again whether any
// client is left that could still move, besides each offer's signal.
const handOffRecheck = 50 * time.Millisecond

// HandOffClients hands every idle client to the new process through
// send, and every busy one at its next idle point, until no client that
// could move is left (nil) or ctx ends (ctx's error). Clients that cannot
// move stay here and are served until they leave or the caller's
// Shutdown ends them: TLS clients, admin console clients, pinned clients
// that stay pinned, clients of a read-only route or of an auth_query
// user, session-mode clients whose server connection uses TLS, and any
// whose send failed. A session-mode client moves between transactions
// together with its server connection (session_handoff.go). After a successful send the client is
// forgotten here: its cancel key withdrawn and this process's descriptor
// closed, nothing said to the client (its connection lives on in the new
// process).
func (s *Server) HandOffClients(ctx context.Context, send SendClient) error {
	ready := s.txEnv.StartHandOff()
	defer s.txEnv.EndHandOff()
	sessionReady := s.startSessionHandOff()
	defer s.endSessionHandOff()
	tick := time.NewTicker(handOffRecheck)
	defer tick.Stop()
	var moved, kept int
	defer func() { s.log.Info("client hand-off ended", "handed_over", moved, "kept", kept) }()
	count := func(ok bool) {
		if ok {
			moved++
		} else {
			kept++
		}
	}
	for {
		for _, c := range s.txEnv.TakeOffered() {
			count(s.handOffTx(c.Session().(*txHost), send))
		}
		for _, o := range s.takeSessionOffers() {
			err := send(o.state, o.files)
			o.verdict <- err // the session goroutine closes its files and ends, or resumes
			count(err == nil)
		}
		if !s.anyMovable() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ready:
		case <-sessionReady:
		case <-tick.C:
		}
	}
}

// anyMovable reports whether a client is left that could still be
// handed over: one logging in, or a logged-in one that may move.
func (s *Server) anyMovable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		if ss.mayMove() {
			return true
		}
	}
	return false
}

// mayMove reports whether the session could still be handed over.
func (ss *session) mayMove() bool {
	if _, isTLS := ss.client.(*tls.Conn); isTLS {
		return false
	}
	ss.mu.Lock()
	info, h, terminated := ss.info, ss.tx, ss.terminated
	ss.mu.Unlock()
	switch {
	case terminated, info.console, ss.killed.Load():
		return false
	case !info.loggedIn:
		return true // still logging in: it may be idle soon
	case h != nil:
		return h.MayMove()
	}
	return !ss.handOffStay.Load() // session mode
}

// handOffTx hands over one offered transaction-pooled client, which the
// caller owns (txpool's handoff.go). true: it went over and its session
// ended here; false: it stays (resumed here, never offered again).
func (s *Server) handOffTx(h *txHost, send SendClient) bool {
	ss := h.ss
	err := s.sendTx(h, send)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, errCannotMove) {
			level = slog.LevelInfo
		}
		s.log.Log(context.Background(), level, "client stays on this process", "remote", ss.remote(), "user", h.user.Name, "database", h.DB.Name, "reason", err)
		h.Stay()
		h.Resume()
		return false
	}
	h.End()
	s.cancels.remove(ss.keyPID, ss.keySecret)
	s.log.Info("session handed over to the new process", "user", h.user.Name, "database", h.DB.Name, "remote", ss.remote(),
		"duration", time.Since(ss.start).Round(time.Millisecond))
	ss.end() // closes this process's descriptor only
	s.sessionDone(ss)
	return true
}

// errCannotMove is a client that stays by design (not a failure of send).
var errCannotMove = errors.New("it cannot move (read-only route, auth_query user, or being closed)")

// sendTx encodes the client's state, dups its socket and calls send.
func (s *Server) sendTx(h *txHost, send SendClient) error {
	ss := h.ss
	if ss.isTerminated() || ss.killed.Load() || h.route != nil || s.state.Load().cfg.User(h.user.Name) == nil {
		return errCannotMove // being closed or killed (it stays to be told so); a read-only route; an auth_query user (its server keys came from the client's proof)
	}
	st := &clientstate.State{Mode: modeByte(h.DB.PoolMode), User: h.user.Name, Database: h.DB.Name,
		CancelPID: ss.keyPID, CancelSecret: ss.keySecret, StartedUnixNano: ss.start.UnixNano()}
	ss.mu.Lock()
	st.AppName = ss.info.appName
	ss.mu.Unlock()
	if set := backend.StartupFrom(h.Context()); set != nil {
		for _, p := range set.Settings {
			st.Startup = append(st.Startup, clientstate.Param{Name: p.Name, Value: p.Value})
		}
	}
	want, stmts := h.Saved()
	for k, v := range want {
		st.Settings = append(st.Settings, clientstate.Param{Name: k, Value: v})
	}
	for _, p := range stmts {
		st.Statements = append(st.Statements, clientstate.Statement{Name: p.Name, Query: p.Query, ParamOIDs: oids(p.Params), Server: p.Server, SQL: p.SQL})
	}
	st.Listen = h.Listening()
	b, err := clientstate.Append(nil, st)
	if err != nil {
		return err
	}
	f, err := dupFile(ss.client, "client")
	if err != nil {
		return err
	}
	defer f.Close()
	return send(b, []*os.File{f})
}

// oids reads Parse's parameter types (an int16 count, then the OIDs),
// already checked by the framer.
func oids(params []byte) []uint32 {
	if len(params) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(params))
	if n == 0 || len(params) != 2+4*n {
		return nil
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(params[2+4*i:])
	}
	return out
}

// paramsBytes is oids' inverse: Parse's parameter types.
func paramsBytes(l []uint32) []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+4*len(l)), uint16(len(l)))
	for _, o := range l {
		b = binary.BigEndian.AppendUint32(b, o)
	}
	return b
}

func modeByte(m config.PoolMode) byte {
	switch m {
	case config.PoolTransaction:
		return clientstate.ModeTransaction
	case config.PoolStatement:
		return clientstate.ModeStatement
	}
	return clientstate.ModeSession
}

// dupFile returns a new descriptor (close-on-exec) for conn's socket,
// the caller's to close; conn keeps its own.
func dupFile(conn any, name string) (*os.File, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("the %s connection has no descriptor", name)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		syscall.ForkLock.RLock() // as os does: no exec sees the new descriptor before close-on-exec is set
		defer syscall.ForkLock.RUnlock()
		nfd, derr = syscall.Dup(int(fd))
		if derr == nil {
			syscall.CloseOnExec(nfd)
		}
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("dup", derr)
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// ClientStateFormat is the version of the client state HandOffClients
// exports and AdoptClient reads (clientstate.Version), told to the other
// process in the hand-off's hello: an upgrade moves clients only between
// binaries naming the same non-zero format; otherwise they drain.
const ClientStateFormat uint32 = clientstate.Version

// WaitClientsGone serves the clients left after a hand-over until each
// left on its own (true) or ctx ends (false: some are left, for Shutdown
// to end). Unlike Shutdown it asks nothing of them: Shutdown ends a
// transaction-pooled client at its next idle point, a drop for a client
// that meant to go on (pgbench, a pool). The old process of an upgrade
// calls it once it stopped accepting, for the clients that did not move
// (an incompatible pair, TLS, pinned ones), so that they finish rather
// than be dropped. Admin console sessions are told to leave at once, as
// at shutdown (the one that typed UPGRADE would otherwise keep this
// process for shutdown_timeout). It polls (handOffRecheck): it runs once
// per upgrade.
func (s *Server) WaitClientsGone(ctx context.Context) bool {
	s.mu.Lock()
	for sess := range s.sessions {
		if sess.isConsole() {
			sess.drain()
		}
	}
	s.mu.Unlock()
	tick := time.NewTicker(handOffRecheck)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.sessions)
		s.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
