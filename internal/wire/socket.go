package wire

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Socket is a TCP or Unix stream connection whose Read and Write make
// their system calls without telling the Go scheduler (RawSyscall). Why:
// every ordinary syscall wakes the runtime's sysmon thread when the
// process was idle, and a proxy that goes idle between every round trip
// pays two or three extra context switches per query for it (measured:
// 4.8 per pgbench transaction through net.Conn, 2.0 through Socket, the
// same as PgBouncer's epoll loop). That is safe only because Go's sockets
// are non-blocking: a raw read or send returns at once, EAGAIN included,
// and then the goroutine parks in the netpoller exactly as net.Conn's
// would, honouring read and write deadlines.
//
// Everything else (Close, deadlines, addresses) is the wrapped
// connection's. A Socket may be read by one goroutine and written by
// another at the same time, as a net.Conn; Reads (and Writes) among
// themselves are serialised.
type Socket struct {
	net.Conn
	rc syscall.RawConn

	rmu   sync.Mutex // guards rbuf, rn, rerr while a Read runs
	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	readf func(fd uintptr) bool

	wmu    sync.Mutex // guards wbuf, wn, werr while a Write runs
	wbuf   []byte
	wn     int
	werr   syscall.Errno
	writef func(fd uintptr) bool
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
	s.readf, s.writef = s.readFd, s.writeFd
	return s
}

// SyscallConn gives the wrapped connection's descriptor (Poller uses it).
func (s *Socket) SyscallConn() (syscall.RawConn, error) { return s.rc, nil }

// Read reads what is there, waiting in the netpoller when nothing is.
func (s *Socket) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rbuf, s.rn, s.rerr = b, 0, 0
	err := s.rc.Read(s.readf)
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case s.rerr != 0:
		return 0, s.opError("read", s.rerr)
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

func (s *Socket) readFd(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rbuf[0])), uintptr(len(s.rbuf)))
		switch errno {
		case 0:
			s.rn = int(n)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // park until readable
		default:
			s.rerr = errno
		}
		return true
	}
}

// Write sends all of b, waiting in the netpoller while the socket's send
// buffer is full. MSG_NOSIGNAL: a peer that went away gives EPIPE, never
// SIGPIPE.
func (s *Socket) Write(b []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	done := 0
	for done < len(b) {
		s.wbuf, s.wn, s.werr = b[done:], 0, 0
		err := s.rc.Write(s.writef)
		s.wbuf = nil
		done += s.wn
		if err != nil {
			return done, err
		}
		if s.werr != 0 {
			return done, s.opError("write", s.werr)
		}
	}
	return done, nil
}

func (s *Socket) writeFd(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.wbuf[0])), uintptr(len(s.wbuf)),
			syscall.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case 0:
			s.wn = int(n)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // park until writable
		default:
			s.werr = errno
		}
		return true
	}
}

// opError shapes a syscall error as net.Conn's would be, so errors.Is
// (syscall.ECONNRESET, EPIPE) works as before.
func (s *Socket) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: s.LocalAddr().Network(), Source: s.LocalAddr(), Addr: s.RemoteAddr(),
		Err: os.NewSyscallError(op, errno)}
}
