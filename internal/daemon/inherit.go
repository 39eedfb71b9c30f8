package daemon

import (
	"fmt"
	"os"
	"sync"

	"github.com/sluice-proxy/sluice/internal/handoff"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/version"
)

// successor is the new process's end of an upgrade: the hand-off socket
// from the process it takes over from, and what arrived on it.
type successor struct {
	conn      *handoff.Conn
	peer      handoff.Hello
	listeners []proxy.ListenerFile // for proxy.Server.Inherit
	admin     *proxy.ListenerFile  // the admin endpoint's, if sent
	// takesCancels: the old process reads Cancel messages (its Done
	// after the listeners said so).
	takesCancels bool
}

// takeHandoff opens the hand-off socket named by the environment; nil
// when this process was not started by an upgrade.
func takeHandoff() (*handoff.Conn, error) {
	fd, ok, err := handoffFDFromEnv()
	if !ok {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return handoff.FileConn(os.NewFile(uintptr(fd), "handoff"))
}

// refuseUpgrade tells the old process why this one will not take over
// (it keeps serving) and closes the socket.
func refuseUpgrade(conn *handoff.Conn, reason error) {
	if _, err := conn.Handshake(handoff.Hello{PID: os.Getpid(), Version: version.Version}); err == nil {
		conn.Send(handoff.KindAbort, handoff.AbortText(reason.Error()))
	}
	conn.Close()
}

// receiveListeners greets the old process and takes its listening
// sockets; the caller owns them (successor.close if it does not start).
func receiveListeners(conn *handoff.Conn) (*successor, error) {
	peer, err := conn.Handshake(handoff.Hello{ClientFormat: advertisedClientFormat(), PID: os.Getpid(), Version: version.Version})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("upgrade hand-off: %w", err)
	}
	s := &successor{conn: conn, peer: peer}
	for {
		kind, payload, files, err := conn.Recv()
		if err != nil {
			s.abort(err)
			return nil, fmt.Errorf("upgrade hand-off: %w", err)
		}
		if kind == handoff.KindDone {
			closeFiles(files)
			s.takesCancels = handoff.DoneFlags(payload)&handoff.DoneTakesCancels != 0
			return s, nil
		}
		role, addr, derr := handoff.DecodeListener(payload)
		if kind != handoff.KindListener || derr != nil || len(files) != 1 {
			closeFiles(files)
			err := fmt.Errorf("upgrade hand-off: unexpected %s message (%v)", kind, derr)
			s.abort(err)
			return nil, err
		}
		lf := proxy.ListenerFile{Role: role, Address: addr, File: files[0]}
		if role == roleAdmin {
			s.admin = &lf
		} else {
			s.listeners = append(s.listeners, lf)
		}
	}
}

// abort gives the upgrade up: the old process hears why and keeps
// serving; the sockets received are closed.
func (s *successor) abort(reason error) {
	s.conn.Send(handoff.KindAbort, handoff.AbortText(reason.Error()))
	s.conn.Close()
	s.closeUnused()
}

// closeUnused closes the listeners not handed to a server.
func (s *successor) closeUnused() {
	closeListenerFiles(s.listeners)
	s.listeners = nil
	if s.admin != nil {
		closeListenerFiles([]proxy.ListenerFile{*s.admin})
		s.admin = nil
	}
}

// adminFor is the inherited admin socket if it serves addr (the old
// process's configured admin.address), else nil (closed).
func (s *successor) adminFor(addr string) *os.File {
	if s == nil || s.admin == nil {
		return nil
	}
	lf := s.admin
	s.admin = nil
	if lf.Address != addr {
		lf.File.Close()
		return nil
	}
	return lf.File
}

// ready tells the old process this one serves, then adopts the clients it
// sends on a goroutine of its own (counted in wg) until Done, the end of
// the socket, or stop closing it. When the old process takes cancels, the
// keys this process does not know go to it from here until it exits
// (its clients left there are still served).
func (s *successor) ready(mover ClientMover, d *Daemon, wg *sync.WaitGroup) error {
	// Cancels are queued from before Ready (the old process has stopped
	// accepting by the time it reads it) and sent from after it.
	var fwd *cancelForwarder
	if s.takesCancels {
		fwd = newCancelForwarder(s.conn, d.Log)
		d.Proxy.SetPredecessorCancel(fwd.forward)
	}
	if err := s.conn.Send(handoff.KindReady, nil); err != nil {
		d.Proxy.SetPredecessorCancel(nil)
		s.conn.Close()
		return fmt.Errorf("upgrade hand-off: saying ready: %w", err)
	}
	if fwd != nil {
		wg.Go(fwd.run)
		d.Log.Info("upgrade: passing cancels for the clients left on the old process to it", "from_pid", s.peer.PID)
	}
	wg.Go(func() {
		defer s.conn.Close()
		adopted, refused, err := adoptClients(s.conn, mover)
		if err != nil && !d.stopping.Load() {
			d.Log.Warn("upgrade: the hand-off of clients ended early", "error", err)
		}
		d.Log.Info("upgrade: took over", "from_pid", s.peer.PID, "from_version", s.peer.Version,
			"clients_adopted", adopted, "clients_refused", refused)
		if fwd == nil {
			return
		}
		if err == nil {
			waitPredecessorGone(s.conn)
		}
		d.Proxy.SetPredecessorCancel(nil)
		fwd.stop()
		d.Log.Info("upgrade: the old process is gone; cancels for its clients are no longer passed on", "from_pid", s.peer.PID)
	})
	return nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
