package wire

import (
	"errors"
	"net"
	"syscall"
)

// ErrNoRawConn is returned by WaitReadable for connections that have no
// file descriptor to poll (net.Pipe in tests, TLS later); callers then read
// into a buffer directly.
var ErrNoRawConn = errors.New("connection has no raw file descriptor")

// WaitReadable blocks until c has bytes to read (or EOF/error) without
// holding a buffer. It allocates; a loop should use a Poller.
func WaitReadable(c net.Conn) error { return NewPoller(c).Wait() }

// Poller waits for one connection to become readable without holding a
// buffer, using the runtime's netpoller, and honours the connection's read
// deadline. This is what lets an idle session cost no buffer memory. It is
// made once per connection and used by one goroutine; Wait does not
// allocate.
type Poller struct {
	rc    syscall.RawConn // nil: no descriptor to poll (net.Pipe, TLS)
	first bool
	fn    func(fd uintptr) bool
	alive bool                  // result of the last Alive
	peekf func(fd uintptr) bool // Alive's callback, made once
}

// NewPoller prepares a Poller for c.
func NewPoller(c net.Conn) *Poller {
	p := &Poller{}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
		}
	}
	p.fn = p.ready
	p.peekf = p.peekAlive
	return p
}

// Alive is the package's Alive for the Poller's connection, without
// allocating (a pool checks every connection it hands out).
func (p *Poller) Alive() bool {
	if p.rc == nil {
		return true
	}
	p.alive = false
	return p.rc.Read(p.peekf) == nil && p.alive
}

func (p *Poller) peekAlive(fd uintptr) bool {
	p.alive = peek(fd) == syscall.EAGAIN
	return true
}

// Wait blocks until the connection is readable. It returns ErrNoRawConn at
// once for connections it cannot poll; callers then simply Read.
func (p *Poller) Wait() error {
	if p.rc == nil {
		return ErrNoRawConn
	}
	p.first = true
	return p.rc.Read(p.fn)
}

func (p *Poller) ready(fd uintptr) bool {
	if !p.first {
		// Woken by the poller: readable (a rare spurious wake-up is
		// harmless, the caller's Read then waits in the usual way).
		return true
	}
	p.first = false
	// Returning false parks the goroutine until fd is readable.
	return peek(fd) != syscall.EAGAIN
}

// Alive reports whether an idle connection is still usable: no bytes are
// waiting (an idle server sends nothing unless it is closing, e.g. after
// pg_terminate_backend) and the peer has not closed it. It never blocks.
func Alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		alive = peek(fd) == syscall.EAGAIN
		return true
	})
	return err == nil && alive
}
