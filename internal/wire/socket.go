package wire

import (
	"net"
	"os"
	"syscall"
)

// Socket is a TCP or Unix stream connection whose Read and Write, on
// Linux, make their system calls without telling the Go scheduler
// (RawSyscall). Why: every ordinary syscall wakes the runtime's sysmon
// thread when the process was idle, and a proxy that goes idle between
// every round trip pays two or three extra context switches per query for
// it (measured: 4.8 per pgbench transaction through net.Conn, 2.0 through
// Socket, the same as PgBouncer's epoll loop). That is safe only because
// Go's sockets are non-blocking: a raw read or send returns at once,
// EAGAIN included, and then the goroutine parks in the netpoller exactly
// as net.Conn's would, honouring read and write deadlines.
//
// The fast path is in socket_raw.go (Linux only: it relies on Linux's
// system call numbers and MSG_NOSIGNAL). On other systems, or when built
// with the sluice_portable tag (which lets Linux test it), Read and Write
// are the wrapped connection's own (socket_portable.go): the same API,
// the same errors, the ordinary cost.
//
// Everything else (Close, deadlines, addresses) is the wrapped
// connection's. A Socket may be read by one goroutine and written by
// another at the same time, as a net.Conn; Reads (and Writes) among
// themselves are serialised.
type Socket struct {
	net.Conn
	rc       syscall.RawConn
	rawState // the fast path's per-connection state; empty when portable
}

// NewSocket wraps c when it is a plain TCP or Unix stream connection and
// returns c itself otherwise (TLS, net.Pipe, already wrapped).
func NewSocket(c net.Conn) net.Conn {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return c
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return c
	}
	s := &Socket{Conn: c, rc: rc}
	s.initRaw()
	return s
}

// SyscallConn gives the wrapped connection's descriptor (Poller uses it).
func (s *Socket) SyscallConn() (syscall.RawConn, error) { return s.rc, nil }

// opError shapes a syscall error as net.Conn's would be, so errors.Is
// (syscall.ECONNRESET, EPIPE) works as before.
func (s *Socket) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: s.LocalAddr().Network(), Source: s.LocalAddr(), Addr: s.RemoteAddr(),
		Err: os.NewSyscallError(op, errno)}
}
