//go:build linux && !sluice_portable

package wire

import (
	"io"
	"sync"
	"syscall"
	"unsafe"
)

// rawSockets says that Read, Write and peek make raw system calls here.
const rawSockets = true

// rawState is what one Socket's raw Reads and Writes share with the
// callbacks they hand to the netpoller (made once, so a Read or Write
// does not allocate).
type rawState struct {
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

func (s *Socket) initRaw() { s.readf, s.writef = s.readFd, s.writeFd }

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

// peek looks at one byte waiting on fd without consuming it or blocking.
// It returns 0 when a byte (or EOF, as n == 0) is there, EAGAIN when
// nothing is, or the socket error. Raw syscall: no allocation.
func peek(fd uintptr) syscall.Errno {
	var b [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno
}
