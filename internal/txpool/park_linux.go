//go:build linux

package txpool

import (
	"errors"
	"os"
	"syscall"
)

// parkSupported: the epoll set below parks idle clients here.
const parkSupported = true

// parkSys is the epoll set of parked clients. Its descriptor is wrapped
// in an *os.File so that the waiter waits in Go's netpoller (an epoll
// descriptor is itself pollable: readable when a registration fired), and
// no OS thread blocks in epoll_wait. Its fields other than file and done
// are used under parking.mu.
type parkSys struct {
	epfd int
	file *os.File
	done chan struct{} // closed when the waiter returns

	// One epoll_ctl's arguments and results, for ctlFn (run by the
	// socket's RawConn.Control, which keeps the descriptor open during
	// the call): made once, so that parking allocates nothing.
	op    ctlOp
	gen   uint32
	ev    syscall.EpollEvent
	fd    int32
	err   error
	ctlFn func(fd uintptr)
}

// open creates the epoll set and starts its waiter (RunSweeps').
func (p *parking) open() error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(epfd), "sluice-parked-clients")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	p.mu.Lock()
	p.sys = parkSys{epfd: epfd, file: f, done: make(chan struct{})}
	p.sys.ctlFn = p.sys.control
	p.state = parkOpen
	p.mu.Unlock()
	go p.wait(rc)
	return nil
}

// close stops the waiter and closes the set; clients still parked (none
// after a Shutdown, which drains them first) are started again.
func (p *parking) close() {
	p.mu.Lock()
	if p.state != parkOpen {
		p.mu.Unlock()
		return
	}
	p.state = parkClosed
	all := p.closeAllLocked()
	f, done := p.sys.file, p.sys.done
	p.mu.Unlock()
	f.Close() // ends the waiter's Read; the descriptor closes when it returns
	<-done
	p.resume(all)
}

// wait is the waiter's goroutine: it reads the set's events through the
// netpoller and starts each ready client's loop again (Session.Resume).
// It returns when close closes the set; should waiting fail otherwise,
// parking stops and every parked client is started again.
func (p *parking) wait(rc syscall.RawConn) {
	defer close(p.sys.done)
	events := make([]syscall.EpollEvent, 128)
	var wake []*Client
	err := rc.Read(func(epfd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(epfd), events, 0)
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 {
				return false // nothing ready: wait in the netpoller
			}
			p.mu.Lock()
			for _, ev := range events[:n] {
				wake = p.readyLocked(ev.Fd, uint32(ev.Pad), wake)
			}
			p.mu.Unlock()
			p.resume(wake)
			clear(wake)
			wake = wake[:0]
		}
	})
	if errors.Is(err, os.ErrClosed) {
		return
	}
	// Not pollable after all, or another failure: no client may stay
	// parked without a waiter.
	p.mu.Lock()
	if p.state != parkOpen {
		p.mu.Unlock()
		return
	}
	p.state = parkUnavailable
	all := p.closeAllLocked()
	p.mu.Unlock()
	p.resume(all)
}

// ctl runs op on c's socket (p.mu held) and returns its descriptor.
// ctlFD only learns the descriptor. An error: the socket is closed, or
// epoll_ctl failed.
func (s *parkSys) ctl(c *Client, op ctlOp, gen uint32) (int32, error) {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return -1, errNoDescriptor
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	s.op, s.gen, s.fd, s.err = op, gen, -1, nil
	if err := rc.Control(s.ctlFn); err != nil {
		return -1, err
	}
	return s.fd, s.err
}

var errNoDescriptor = errors.New("the client connection has no descriptor")

// control is ctlFn: the epoll_ctl itself, while the descriptor is held
// open. A MOD that finds no registration adds one.
func (s *parkSys) control(fd uintptr) {
	s.fd = int32(fd)
	var op int
	switch s.op {
	case ctlFD:
		return
	case ctlAdd:
		op = syscall.EPOLL_CTL_ADD
	case ctlMod:
		op = syscall.EPOLL_CTL_MOD
	case ctlDel:
		op = syscall.EPOLL_CTL_DEL
	}
	s.ev = syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd), Pad: int32(s.gen)}
	err := syscall.EpollCtl(s.epfd, op, int(fd), &s.ev)
	if err == syscall.ENOENT && op == syscall.EPOLL_CTL_MOD {
		err = syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, int(fd), &s.ev)
	}
	if err != nil {
		s.err = os.NewSyscallError("epoll_ctl", err)
	}
}
