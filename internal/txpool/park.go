package txpool

import (
	"sync"
	"time"
)

// Parking: an idle client with no goroutine (docs/design/tx-handoff.md,
// "Idle client memory"). A goroutine costs at least a 2 kB stack and a
// 0.46 kB runtime descriptor, more than half of what an idle client
// costs; PgBouncer's whole client is 2.3 kB. So a client idle for a full
// period of the hop sweep (sweep.go), with nothing in flight, is parked:
// its goroutine registers the client socket in one epoll set shared by
// the Env (park_linux.go; EPOLLIN|EPOLLRDHUP|EPOLLONESHOT, data = the
// socket's descriptor number and a generation) and returns, and the
// goroutine exits. One goroutine of the Env waits on the set and starts
// the client's loop again (Session.Resume) when its socket becomes
// readable or hangs up. What used to reach an idle goroutine through its
// read deadline reaches a parked client through Wake (sluice draining),
// BeforeClose (KILL, KILL_CLIENT, shutdown's terminate) and the hop
// sweep (client_idle_timeout, checked every period: up to one period
// late).
//
// Ownership: a client is owned by exactly one party at a time. While it
// runs, by its goroutine (Serve's, and the attachment's for what
// attach.go says); while parked, by the table (parking.table, under
// parking.mu). park moves it from its goroutine to the table under mu and
// the goroutine then returns without touching it; whoever takes it out
// of the table under mu (the waiter, the sweep, Wake, BeforeClose, close)
// owns it until it calls Session.Resume, which hands it to a fresh
// goroutine. The client's epoll registration (flagEpollAdded, flagNoPark) is
// guarded by mu too; it is withdrawn (EPOLL_CTL_DEL) before the socket
// is closed, always: by End, on the client's goroutine before the session
// closes it, or by BeforeClose before the session closes it from outside.
// A descriptor number is reused by the next accept once closed, and a
// registration left behind would then name another client's socket.
//
// A client is parkable (flagParkable) when its socket has a descriptor
// the kernel reads for it: not TLS (a *tls.Conn may hold decrypted bytes
// the kernel no longer shows; a TLS client keeps the hop), and only on
// Linux (park_other.go keeps the hop everywhere else).

// parkOutcome is what an attempt to park gave.
type parkOutcome uint8

const (
	parkedNow parkOutcome = iota // the table owns the client: return at once
	parkLater                    // not now (attached, mid-message, draining, closing): ask again next period
	parkNever                    // parking is unavailable (epoll failed): keep the hop
)

// ctlOp is an epoll_ctl operation, or ctlFD: only learn the descriptor.
type ctlOp uint8

const (
	ctlFD ctlOp = iota
	ctlAdd
	ctlMod
	ctlDel
)

// parkState says whether the epoll set can take clients.
type parkState uint8

const (
	parkClosed      parkState = iota // not opened yet, or closed (RunSweeps ended)
	parkOpen                         // the waiter runs
	parkUnavailable                  // opening or waiting failed: no client parks again
)

// parkEntry is one parked client, at its socket's descriptor number.
type parkEntry struct {
	c     *Client
	gen   uint32 // the registration's, carried by its events: a stale event matches none
	timed bool   // the client has an idle deadline (counted in timed)
}

// parking is the table of parked clients and the epoll set (sys). A
// parked client costs its entry (16 bytes, in a table indexed by
// descriptor number) and the kernel's epoll item, besides what it holds
// anyway (its socket, its session, its txpool.Client).
type parking struct {
	mu    sync.Mutex
	state parkState
	sys   parkSys     // park_linux.go / park_other.go
	table []parkEntry // by descriptor number
	n     int         // parked clients
	timed int         // parked clients with an idle deadline: the hop sweep ticks while any
	gen   uint32
	// wake holds the clients the sweep takes out (its goroutine's).
	wake []*Client
	// offered holds the clients offered to the upgrade hand-off and not
	// yet taken (handoff.go); offerReady is signalled at each offer.
	offered    []*Client
	offerReady chan struct{}
}

// park asks to park c (its goroutine's, when the hop sweep found it idle
// for a full period). parkedNow: the table owns c and the caller must
// return without touching it.
func (c *Client) park() parkOutcome {
	if !c.has(flagParkable) {
		return parkNever
	}
	if !c.up.AtBoundary() {
		return parkLater
	}
	// An attachment that detached with a reader is waited for here (its
	// goroutine is ending), so that none is kept while parked; a fatal
	// one closed the socket: the next read ends the session. With no
	// attachment left, the pins (set by the attachment) can be read.
	if a, err := c.liveAttachment(); a != nil || err != nil || len(c.Pins) > 0 {
		return parkLater
	}
	if c.env.sweeps.handOff.Load() && c.offer() {
		return parkedNow // owned like a parked client (handoff.go)
	}
	return c.env.sweeps.park.park(c)
}

func (p *parking) park(c *Client) parkOutcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state == parkUnavailable:
		return parkNever
	case p.state != parkOpen, c.has(flagNoPark), c.draining.Load(), c.has(flagNotify), c.killed():
		// flagNotify: notifications to write first; flagKilled: leave.
		// Both are set before Wake takes mu, so a client parked before
		// they were set is resumed by that Wake.
		return parkLater
	}
	p.gen++
	op := ctlAdd
	if c.has(flagEpollAdded) {
		op = ctlMod // ONESHOT left it registered, disabled
	}
	fd, err := p.sys.ctl(c, op, p.gen)
	if err != nil {
		return parkLater // the socket is closing: the next read ends the session
	}
	c.set(flagEpollAdded, true)
	for int(fd) >= len(p.table) {
		p.table = append(p.table, parkEntry{})
	}
	timed := c.idleAt.Load() != 0
	p.table[fd] = parkEntry{c: c, gen: p.gen, timed: timed}
	p.n++
	if timed {
		p.timed++
		// The hop sweep may have stopped between asking c to park and
		// now (c's goroutine was slow to get here): nothing else would
		// start it again, and c's client_idle_timeout would never come.
		// The sweep sets hopSleep before it checks timedParked under mu,
		// so one of the two sees the other.
		if w := &c.env.sweeps; w.hopSleep.Load() {
			w.wake()
		}
	}
	return parkedNow
}

// takeLocked removes the client parked at fd (p.mu held); the caller
// owns it and must resume it.
func (p *parking) takeLocked(fd int32) *Client {
	e := p.table[fd]
	p.table[fd] = parkEntry{}
	p.n--
	if e.timed {
		p.timed--
	}
	return e.c
}

// parkedAtLocked reports whether c is parked at fd (p.mu held).
func (p *parking) parkedAtLocked(fd int32, c *Client) bool {
	return fd >= 0 && int(fd) < len(p.table) && p.table[fd].c == c
}

// readyLocked takes out the client an epoll event names, if the event is
// not stale (the waiter's, p.mu held).
func (p *parking) readyLocked(fd int32, gen uint32, wake []*Client) []*Client {
	if fd >= 0 && int(fd) < len(p.table) && p.table[fd].c != nil && p.table[fd].gen == gen {
		wake = append(wake, p.takeLocked(fd))
	}
	return wake
}

// Wake starts a parked client's loop again at once (sluice draining:
// the loop then sees the drain and leaves as an idle client does). A
// client that is not parked is left alone.
func (c *Client) Wake() {
	p := &c.env.sweeps.park
	p.mu.Lock()
	var took *Client
	if c.has(flagEpollAdded) { // parked implies registered
		if fd, err := p.sys.ctl(c, ctlFD, 0); err == nil && p.parkedAtLocked(fd, c) {
			took = p.takeLocked(fd)
		}
	}
	p.mu.Unlock()
	if took != nil {
		took.sess.Resume()
	}
}

// BeforeClose is called by the session before it closes the client's
// socket from outside (KILL, KILL_CLIENT, shutdown's terminate): the
// client never parks again, its registration is withdrawn while the
// descriptor is still its own, and, if parked, it is started again (its
// loop then finds the socket closed and ends the session).
func (c *Client) BeforeClose() {
	p := &c.env.sweeps.park
	p.mu.Lock()
	c.set(flagNoPark, true)
	took := p.withdrawLocked(c)
	p.mu.Unlock()
	if took != nil {
		took.sess.Resume()
	}
}

// withdrawLocked removes c's registration from the epoll set, taking c
// out of the table if it was parked (p.mu held).
func (p *parking) withdrawLocked(c *Client) (took *Client) {
	if !c.take(flagEpollAdded) {
		return nil
	}
	if p.state != parkOpen {
		return nil // closed with the set, and close resumed every client
	}
	fd, err := p.sys.ctl(c, ctlDel, 0)
	if err == nil && p.parkedAtLocked(fd, c) {
		took = p.takeLocked(fd)
	}
	return took
}

// endParking is End's: the client's goroutine ends the session, whose
// socket is closed next.
func (c *Client) endParking() {
	p := &c.env.sweeps.park
	p.mu.Lock()
	c.set(flagNoPark, true)
	p.withdrawLocked(c) // not parked: its own goroutine runs
	p.mu.Unlock()
}

// expire starts again every parked client whose idle deadline passed, so
// that it leaves as today (client_idle_timeout); called by the hop sweep
// once a period, so a parked client leaves up to one period late. It
// reports whether any parked client still has a deadline.
func (p *parking) expire(now time.Time) bool {
	p.mu.Lock()
	if p.timed == 0 {
		p.mu.Unlock()
		return false
	}
	t := now.UnixNano()
	for fd := range p.table {
		if e := p.table[fd]; e.timed && e.c.idleAt.Load() <= t {
			p.wake = append(p.wake, p.takeLocked(int32(fd)))
		}
	}
	more := p.timed > 0
	p.mu.Unlock()
	p.resume(p.wake)
	clear(p.wake)
	p.wake = p.wake[:0]
	return more
}

// resume hands each client to a fresh goroutine.
func (p *parking) resume(cs []*Client) {
	for _, c := range cs {
		c.sess.Resume()
	}
}

// timedParked reports whether a parked client has an idle deadline.
func (p *parking) timedParked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.timed > 0
}

// closeAll marks the set closed and takes every parked client out (mu
// held by the caller); they are resumed once the set is closed.
func (p *parking) closeAllLocked() []*Client {
	var all []*Client
	for fd := range p.table {
		if p.table[fd].c != nil {
			all = append(all, p.takeLocked(int32(fd)))
		}
	}
	p.table = nil
	return all
}

// ParkedClients reports how many clients are parked (tests wait on it).
func (e *Env) ParkedClients() int {
	p := &e.sweeps.park
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// SetParkAfter sets the hop sweep's period, hence how long a client must
// be idle before it is parked (or moved) and the granularity of a parked
// client's idle timeout (default hopAfter, 1 s). Tests shorten it.
func (e *Env) SetParkAfter(d time.Duration) {
	e.sweeps.period.Store(int64(d))
	e.sweeps.wake()
}
