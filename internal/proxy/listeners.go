package proxy

import (
	"fmt"
	"net"
	"os"
)

// The roles of the listening sockets, the names under which an upgrade
// hands them to the new process: the config key each one serves.
const (
	RoleAddress  = "listen.address"
	RoleSocket   = "listen.socket_dir"
	RoleReadOnly = "listen.read_only_address"
)

// ListenerFile is a listening socket on its way between two processes:
// its role, the address as configured (for the Unix socket its path) and
// a descriptor of it. Whoever holds a ListenerFile owns File.
type ListenerFile struct {
	Role, Address string
	File          *os.File
}

// Inherit gives a server not yet started listening sockets to serve
// instead of binding its own (an upgrade: the old process keeps serving
// the same sockets until the new one is ready). The server owns the files
// from here on: Start takes those whose role and address its
// configuration names and closes the others, so that a changed
// listen.address binds anew.
func (s *Server) Inherit(files []ListenerFile) {
	s.inherited = append(s.inherited, files...)
}

// listen serves addr for role from an inherited socket when there is one,
// else binds it.
func (s *Server) listen(role, network, addr string) (net.Listener, error) {
	for i, lf := range s.inherited {
		if lf.Role != role || lf.Address != addr || lf.File == nil {
			continue
		}
		s.inherited[i].File = nil
		l, err := net.FileListener(lf.File) // a duplicate; the file is done with
		lf.File.Close()
		if err != nil {
			return nil, fmt.Errorf("inherited %s socket: %w", role, err)
		}
		if ul, ok := l.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(true) // this process owns the path now
		}
		s.log.Info("serving an inherited socket", "role", role, "address", l.Addr().String())
		return l, nil
	}
	if network == "unix" {
		removeStaleSocket(addr)
		l, err := net.Listen("unix", addr)
		if err == nil {
			os.Chmod(addr, 0o777)
		}
		return l, err
	}
	return net.Listen(network, addr)
}

// closeInherited closes the inherited sockets Start did not take.
func (s *Server) closeInherited() {
	for _, lf := range s.inherited {
		if lf.File != nil {
			s.log.Info("closing an inherited socket this configuration does not name", "role", lf.Role, "address", lf.Address)
			lf.File.Close()
		}
	}
	s.inherited = nil
}

// ListenerFiles duplicates the listening sockets for a new process; the
// caller owns and closes the files. Call it while the server serves.
func (s *Server) ListenerFiles() ([]ListenerFile, error) {
	cfg := s.state.Load().cfg
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, fmt.Errorf("sluice is shutting down")
	}
	var out []ListenerFile
	add := func(role, addr string, l net.Listener) error {
		fl, ok := l.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("%s: a %T cannot be handed over", role, l)
		}
		f, err := fl.File()
		if err != nil {
			return fmt.Errorf("%s: %w", role, err)
		}
		out = append(out, ListenerFile{Role: role, Address: addr, File: f})
		return nil
	}
	err := add(RoleAddress, cfg.Listen.Address, s.listeners[0])
	if err == nil && len(s.listeners) > 1 {
		err = add(RoleSocket, s.listeners[1].Addr().String(), s.listeners[1])
	}
	if err == nil && s.roListener != nil {
		err = add(RoleReadOnly, cfg.Listen.ReadOnlyAddress, s.roListener)
	}
	if err != nil {
		for _, lf := range out {
			lf.File.Close()
		}
		return nil, err
	}
	return out, nil
}

// StopAccepting stops taking new clients and waits for the accept loops
// to end, leaving every session as it is: the old process of an upgrade
// calls it once the new one serves the same sockets, so a connection
// attempt always finds one of the two accepting. The Unix socket's path is
// left in place (the new process serves it). Shutdown follows.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	all := append([]net.Listener{s.roListener}, s.listeners...)
	for _, l := range all {
		if ul, ok := l.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		if l != nil {
			l.Close()
		}
	}
	s.mu.Unlock()
	s.acceptWG.Wait()
	s.log.Info("stopped accepting clients: another process serves the listeners")
}
