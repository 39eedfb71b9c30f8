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
// made once per connection (NewPoller, or Init on a Poller embedded in a
// longer-lived value: an idle transaction-pooled client holds one) and
// used by one goroutine; Wait and Alive do not allocate. Its one callback
// serves both (step says which), so a Poller costs one closure.
type Poller struct {
	rc   syscall.RawConn // nil: no descriptor to poll (net.Pipe, TLS)
	fn   func(fd uintptr) bool
	step pollStep
}

type pollStep uint8

const (
	waitFirst pollStep = iota // Wait's first call: peek, park if nothing
	waitWoken                 // Wait woken by the netpoller
	aliveAsk                  // Alive: peek once
	aliveYes                  // Alive's answer: nothing to read, not closed
	aliveNo
)

// NewPoller prepares a Poller for c.
func NewPoller(c net.Conn) *Poller {
	p := &Poller{}
	p.Init(c)
	return p
}

// Init prepares p, a zero Poller, for c.
func (p *Poller) Init(c net.Conn) {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
		}
	}
	p.fn = p.call
}

// Alive is the package's Alive for the Poller's connection, without
// allocating (a pool checks every connection it hands out).
func (p *Poller) Alive() bool {
	if p.rc == nil {
		return true
	}
	p.step = aliveAsk
	return p.rc.Read(p.fn) == nil && p.step == aliveYes
}

// Wait blocks until the connection is readable. It returns ErrNoRawConn at
// once for connections it cannot poll; callers then simply Read.
func (p *Poller) Wait() error {
	if p.rc == nil {
		return ErrNoRawConn
	}
	p.step = waitFirst
	return p.rc.Read(p.fn)
}

// call is the RawConn.Read callback; returning false parks the goroutine
// until fd is readable.
func (p *Poller) call(fd uintptr) bool {
	switch p.step {
	case aliveAsk:
		p.step = aliveNo
		if peek(fd) == syscall.EAGAIN {
			p.step = aliveYes
		}
		return true
	case waitFirst:
		p.step = waitWoken
		return peek(fd) != syscall.EAGAIN
	default:
		// Woken by the poller: readable (a rare spurious wake-up is
		// harmless, the caller's Read then waits in the usual way).
		return true
	}
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
