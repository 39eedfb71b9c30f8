//go:build linux

package txpool

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// The parking table and its epoll set, on real loopback sockets with no
// session behind them: Resume only reports which client was handed back.
// The behaviour through a whole sluice is in proxy's tx_park_test.go.

type resumeRecorder struct {
	Session // only Resume is called
	c       *Client
	resumed chan *Client
}

func (r *resumeRecorder) Resume() { r.resumed <- r.c }

// parkingEnv opens an Env's epoll set and closes it when the test ends.
func parkingEnv(t *testing.T) *Env {
	e := NewEnv(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err := e.sweeps.park.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.sweeps.park.close)
	return e
}

// parkableClient is a client on one end of a loopback TCP connection;
// the other end is returned as its peer.
func parkableClient(t *testing.T, e *Env, resumed chan *Client) (*Client, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	rec := &resumeRecorder{resumed: resumed}
	c := &Client{env: e, sess: rec, conn: wire.NewSocket(nc), draining: new(atomic.Bool)}
	rec.c = c
	c.set(flagParkable, true)
	t.Cleanup(func() {
		c.endParking()
		nc.Close()
		peer.Close()
	})
	return c, peer
}

// resumedClient waits for a resume (the minute only ends a hung test).
func resumedClient(t *testing.T, resumed chan *Client) *Client {
	t.Helper()
	select {
	case c := <-resumed:
		return c
	case <-time.After(time.Minute):
		t.Fatal("no client was resumed")
		return nil
	}
}

func mustPark(t *testing.T, c *Client) {
	t.Helper()
	if got := c.park(); got != parkedNow {
		t.Fatalf("park: %d, want parkedNow", got)
	}
}

// A parked client is resumed when its peer sends a byte, or hangs up;
// parking it again re-arms its ONESHOT registration (MOD), which fires at
// once for a byte still unread.
func TestParkedClientIsResumedWhenReadableOrHungUp(t *testing.T) {
	e := parkingEnv(t)
	resumed := make(chan *Client, 4)
	a, peerA := parkableClient(t, e, resumed)
	b, peerB := parkableClient(t, e, resumed)
	mustPark(t, a)
	mustPark(t, b)
	if n := e.ParkedClients(); n != 2 {
		t.Fatalf("parked %d, want 2", n)
	}
	peerA.Write([]byte{'Q'})
	if c := resumedClient(t, resumed); c != a {
		t.Fatalf("resumed the wrong client")
	}
	mustPark(t, a) // the byte is still unread
	if c := resumedClient(t, resumed); c != a {
		t.Fatalf("resumed the wrong client")
	}
	peerB.Close()
	if c := resumedClient(t, resumed); c != b {
		t.Fatalf("resumed the wrong client")
	}
	if n := e.ParkedClients(); n != 0 {
		t.Fatalf("parked %d, want 0", n)
	}
}

// An event of an earlier registration (a client woken by someone else
// first, then parked again) names a generation the table no longer has:
// it resumes no one.
func TestStaleParkEventResumesNoOne(t *testing.T) {
	e := parkingEnv(t)
	resumed := make(chan *Client, 4)
	c, _ := parkableClient(t, e, resumed)
	p := &e.sweeps.park
	mustPark(t, c)
	p.mu.Lock()
	fd, _ := p.sys.ctl(c, ctlFD, 0)
	old := p.table[fd].gen
	p.mu.Unlock()
	c.Wake()
	if got := resumedClient(t, resumed); got != c {
		t.Fatalf("Wake resumed the wrong client")
	}
	mustPark(t, c)
	p.mu.Lock()
	stale := p.readyLocked(fd, old, nil)
	p.mu.Unlock()
	if len(stale) != 0 || e.ParkedClients() != 1 {
		t.Fatalf("a stale event took the client out (%d taken, %d parked)", len(stale), e.ParkedClients())
	}
}

// BeforeClose resumes a parked client, withdraws its socket from the
// epoll set (it is no longer registered) and forbids parking it again.
func TestBeforeCloseWithdrawsAndResumesAParkedClient(t *testing.T) {
	e := parkingEnv(t)
	resumed := make(chan *Client, 4)
	c, _ := parkableClient(t, e, resumed)
	mustPark(t, c)
	c.BeforeClose()
	if got := resumedClient(t, resumed); got != c {
		t.Fatalf("resumed the wrong client")
	}
	if c.has(flagEpollAdded) || !c.has(flagNoPark) {
		t.Fatalf("flags %b after BeforeClose", c.flags.Load())
	}
	p := &e.sweeps.park
	p.mu.Lock()
	_, err := p.sys.ctl(c, ctlDel, 0)
	p.mu.Unlock()
	if err == nil {
		t.Fatalf("the socket was still in the epoll set")
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("a second EPOLL_CTL_DEL: %v, want ENOENT", err)
	}
	if got := c.park(); got != parkLater {
		t.Fatalf("a closing client parked: %d", got)
	}
}

// The sweep's expire resumes the parked clients whose idle deadline
// passed, only those, and reports whether a deadline remains; close
// resumes whoever is still parked.
func TestExpireResumesOnlyClientsPastTheirIdleDeadline(t *testing.T) {
	e := parkingEnv(t)
	resumed := make(chan *Client, 4)
	late, _ := parkableClient(t, e, resumed)
	later, _ := parkableClient(t, e, resumed)
	never, _ := parkableClient(t, e, resumed)
	now := time.Now()
	late.idleAt.Store(now.Add(-time.Millisecond).UnixNano())
	later.idleAt.Store(now.Add(time.Hour).UnixNano())
	for _, c := range []*Client{late, later, never} {
		mustPark(t, c)
	}
	if more := e.sweeps.park.expire(now); !more {
		t.Fatalf("expire reports no deadline left; one client has an hour")
	}
	if got := resumedClient(t, resumed); got != late {
		t.Fatalf("expire resumed the wrong client")
	}
	if n := e.ParkedClients(); n != 2 {
		t.Fatalf("parked %d, want 2", n)
	}
	e.sweeps.park.close()
	got := map[*Client]bool{resumedClient(t, resumed): true, resumedClient(t, resumed): true}
	if !got[later] || !got[never] || e.ParkedClients() != 0 {
		t.Fatalf("close did not resume every parked client")
	}
	if c := late.park(); c != parkLater {
		t.Fatalf("a client parked in a closed set: %d", c)
	}
}

// A client parked with an idle deadline while the hop sweep sleeps (it
// stopped between asking the client to park and the client parking,
// its goroutine being slow under load) wakes the sweep, which alone
// ends it at client_idle_timeout; one without a deadline does not.
func TestTimedParkWakesASleepingHopSweep(t *testing.T) {
	e := parkingEnv(t)
	resumed := make(chan *Client, 2)
	untimed, _ := parkableClient(t, e, resumed)
	timed, _ := parkableClient(t, e, resumed)
	e.sweeps.hopSleep.Store(true)
	mustPark(t, untimed)
	if n := len(e.sweeps.kick); n != 0 {
		t.Fatalf("a park without a deadline kicked the sweep")
	}
	timed.idleAt.Store(time.Now().Add(time.Hour).UnixNano())
	mustPark(t, timed)
	if n := len(e.sweeps.kick); n != 1 {
		t.Fatalf("a park with a deadline left the sleeping hop sweep asleep")
	}
}
