//go:build (unix && !linux) || sluice_portable

package wire

import (
	"errors"
	"syscall"
)

// rawSockets says that Read, Write and peek go through the Go runtime
// here: the portable build (macOS, FreeBSD and other Unix systems, or
// Linux with the sluice_portable tag).
const rawSockets = false

// rawState is empty: a portable Socket keeps nothing of its own.
type rawState struct{}

func (s *Socket) initRaw() {}

// Read is the wrapped connection's.
func (s *Socket) Read(b []byte) (int, error) { return s.Conn.Read(b) }

// Write is the wrapped connection's. A peer that went away gives EPIPE:
// Go's runtime keeps SIGPIPE on a socket from ending the process
// (os/signal's doc, "SIGPIPE").
func (s *Socket) Write(b []byte) (int, error) { return s.Conn.Write(b) }

// peek looks at one byte waiting on fd without consuming it or blocking.
// It returns 0 when a byte (or EOF) is there, EAGAIN when nothing is, or
// the socket error. syscall.Recvfrom may allocate the sender's address;
// only the Linux build promises none.
func peek(fd uintptr) syscall.Errno {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno):
		if errno == syscall.EWOULDBLOCK {
			return syscall.EAGAIN
		}
		return errno
	}
	return syscall.EIO
}
