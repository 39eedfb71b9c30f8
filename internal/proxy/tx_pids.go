package proxy

import (
	"crypto/rand"
	"encoding/binary"
)

// nextPID issues the process ID a transaction-pooled client is shown.
// Its server process changes from transaction to transaction, so the ID
// is sluice's: cancel requests carrying it reach whichever server
// connection the client holds at that moment. IDs start at a random
// point so that two sluice instances rarely issue the same ones; in a
// fleet they carry the instance's peer number (peercancel.PID), so that
// any instance knows where to forward a cancel.
func (s *Server) nextPID() uint32 {
	if pid, ok := s.fleetPID(); ok {
		return pid
	}
	for {
		if s.pids.Load() == 0 {
			var b [4]byte
			rand.Read(b[:])
			s.pids.CompareAndSwap(0, binary.BigEndian.Uint32(b[:])&0x3fffffff|1<<30)
		}
		if pid := s.pids.Add(1) & 0x7fffffff; pid != 0 {
			return pid
		}
	}
}

// isTx reports whether the session is transaction-pooled (mu guards tx).
func (ss *session) isTx() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.tx != nil
}
