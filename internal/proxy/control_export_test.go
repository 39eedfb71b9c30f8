package proxy

import (
	"net"
	"strconv"
)

// ClientIDOf returns the id (as SHOW CLIENTS shows it) of the client
// whose socket's remote port is port, or 0.
func (s *Server) ClientIDOf(port int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		if a := sess.client.RemoteAddr(); a != nil && hasPort(a.String(), port) {
			return sess.id
		}
	}
	return 0
}

func hasPort(addr string, port int) bool {
	_, p, err := net.SplitHostPort(addr)
	return err == nil && p == strconv.Itoa(port)
}

// HopsPending is the transaction engine's count of clients waiting to
// move to a fresh goroutine (a memory measurement waits for none).
func (s *Server) HopsPending() int { return s.txEnv.HopsPending() }
