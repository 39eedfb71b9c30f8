package pool

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// Gate bounds the server connections of several pools together:
// PgBouncer's max_db_connections, one Gate per database shared by the
// pools of all its users. A pool that joined a gate holds one token per
// connection it has open (idle, busy, being dialled or closed); it takes
// a token before it dials and gives it back once the close of a
// connection has completed, so the server never sees more connections
// from the gate's pools than the limit, whatever the pools do
// concurrently.
//
// The limit can change at run time (SetLimit: a fleet's share of the
// database's budget moves, see internal/cluster). Lowering it never
// touches a busy connection: idle ones are closed at once, coldest
// first, and busy ones when they are released, until the pools hold no
// more than the new limit (WaitHeld waits for that).
//
// A borrow that finds its pool below max_size but the gate full waits in
// its pool's queue like any other; the pool registers as hungry, and one
// idle connection of another pool of the gate is closed to make room
// (PgBouncer's eviction of an idle server connection of the same
// database), as is, while it waits, a connection of another pool that
// is released and would go idle. Whenever tokens are given back the hungry pools are asked
// to serve their queues again. These wake-ups and evictions run on
// short-lived goroutines (the gate's lock and a pool's lock are never
// held while taking another pool's lock), started only while a pool
// waits for the gate: with the gate below its limit, a pool pays one
// nil test on Release and two atomic reads when it dials or closes.
type Gate struct {
	mu      sync.Mutex
	limit   atomic.Int64 // written under mu
	held    atomic.Int64 // written under mu
	members []gateMember
	hungry  []gateMember
	nHungry atomic.Int32  // len(hungry), read without mu
	fell    chan struct{} // closed when held falls; nil while no one waits
}

// gateMember is a pool as its gate sees it.
type gateMember interface {
	gateIdle() int             // idle connections now (without the pool's lock)
	gateGranted()              // tokens were freed: serve the queue again
	gateTrim(n int, over bool) // close up to n idle connections (only while the gate is over its limit, if over)
}

// NewGate makes a gate that lets its pools hold at most limit
// connections together (0: none at all, until SetLimit).
func NewGate(limit int) *Gate {
	g := &Gate{}
	g.limit.Store(int64(max(limit, 0)))
	return g
}

// Limit is the number of connections the gate allows now.
func (g *Gate) Limit() int { return int(g.limit.Load()) }

// Held is the number of connections the gate's pools hold now (open,
// being dialled or being closed).
func (g *Gate) Held() int { return int(g.held.Load()) }

// starving reports whether a pool waits for the gate: a released
// connection that would go idle is closed instead, to make room.
func (g *Gate) starving() bool { return g.nHungry.Load() > 0 }

// over reports whether the pools hold more than the limit (after the
// limit was lowered): a released connection is closed, not kept.
func (g *Gate) over() bool { return g.held.Load() > g.limit.Load() }

// SetLimit changes the limit. Lowered below what the pools hold, idle
// connections are closed now (coldest first) and busy ones when
// released; raised, pools waiting for the gate are served. It must not
// be called with a pool's lock held (it takes them).
func (g *Gate) SetLimit(limit int) {
	limit = max(limit, 0)
	type trim struct {
		m gateMember
		n int
	}
	var trims []trim
	var wake []gateMember
	g.mu.Lock()
	g.limit.Store(int64(limit))
	if excess := int(g.held.Load()) - limit; excess > 0 {
		for _, m := range g.members {
			if n := min(m.gateIdle(), excess); n > 0 {
				trims = append(trims, trim{m, n})
				excess -= n
			}
		}
	} else {
		wake, g.hungry = g.hungry, nil
		g.nHungry.Store(0)
	}
	g.mu.Unlock()
	for _, t := range trims {
		t.m.gateTrim(t.n, true)
	}
	for _, m := range wake {
		m.gateGranted()
	}
}

// WaitHeld waits until the pools hold at most n connections, or ctx
// ends.
func (g *Gate) WaitHeld(ctx context.Context, n int) error {
	for {
		g.mu.Lock()
		if int(g.held.Load()) <= n {
			g.mu.Unlock()
			return nil
		}
		if g.fell == nil {
			g.fell = make(chan struct{})
		}
		ch := g.fell
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// join adds m, which holds n connections already (a pool that joins
// after it opened some); they count at once, over the limit or not.
func (g *Gate) join(m gateMember, n int) {
	g.mu.Lock()
	g.members = append(g.members, m)
	g.held.Add(int64(n))
	g.mu.Unlock()
}

// leave removes m (a closed pool); its tokens come back as its
// connections close.
func (g *Gate) leave(m gateMember) {
	g.mu.Lock()
	g.members = slices.DeleteFunc(g.members, func(x gateMember) bool { return x == m })
	g.hungry = slices.DeleteFunc(g.hungry, func(x gateMember) bool { return x == m })
	g.nHungry.Store(int32(len(g.hungry)))
	g.mu.Unlock()
}

// take gives m a token if the limit allows. If not and wait is set, m
// is registered as hungry (woken when tokens come back) and, the first
// time, one idle connection of another pool is closed to make room.
// Called with m's lock held: it never takes another pool's lock here.
func (g *Gate) take(m gateMember, wait bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held.Load() < g.limit.Load() {
		g.held.Add(1)
		return true
	}
	if !wait || slices.Contains(g.hungry, m) {
		return false
	}
	g.hungry = append(g.hungry, m)
	g.nHungry.Store(int32(len(g.hungry)))
	for _, v := range g.members {
		if v != m && v.gateIdle() > 0 {
			go v.gateTrim(1, false)
			break
		}
	}
	return false
}

// give returns n tokens and wakes the hungry pools. Called with a
// pool's lock held, so the wake-ups run on their own goroutines.
func (g *Gate) give(n int) {
	g.mu.Lock()
	g.held.Add(-int64(n))
	if g.fell != nil {
		close(g.fell)
		g.fell = nil
	}
	wake := g.hungry
	g.hungry = nil
	g.nHungry.Store(0)
	g.mu.Unlock()
	for _, m := range wake {
		go m.gateGranted()
	}
}

// JoinGate makes the pool count its connections against g (see Gate);
// connections it has open already count at once. A pool joins one gate
// once, before or while it is used.
func (p *Pool[C]) JoinGate(g *Gate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil || p.closed {
		return
	}
	p.gate = g
	p.tokens = p.openLocked()
	g.join(p, p.tokens)
}

// takeLocked secures a token for one more open connection: always
// without a gate; else a token the pool kept from a slot it freed
// without settling, or a new one if the gate's limit allows. wait
// (a borrow, not min_size) registers the pool as hungry on refusal.
func (p *Pool[C]) takeLocked(wait bool) bool {
	if p.gate == nil || p.tokens > p.openLocked() {
		return true
	}
	if p.gate.take(p, wait) {
		p.tokens++
		return true
	}
	return false
}

// settleLocked gives back the tokens of the slots freed since the last
// call (open connections fell): called wherever a freed slot may be
// granted (grantLocked) and where one is freed without that.
func (p *Pool[C]) settleLocked() {
	if p.gate == nil {
		return
	}
	if extra := p.tokens - p.openLocked(); extra > 0 {
		p.tokens -= extra
		p.gate.give(extra)
	}
}

// overGateLocked reports whether the pool's gate holds more than its
// limit: a released connection is then closed.
func (p *Pool[C]) overGateLocked() bool { return p.gate != nil && p.gate.over() }

func (p *Pool[C]) gateIdle() int {
	idle, _ := unpackSlots(p.slots.Load())
	return idle
}

func (p *Pool[C]) gateGranted() {
	p.mu.Lock()
	p.grantLocked()
	p.mu.Unlock()
}

// gateTrim closes up to n idle connections, coldest first; with over,
// only as many as the gate holds beyond its limit.
func (p *Pool[C]) gateTrim(n int, over bool) {
	p.mu.Lock()
	if p.closed || p.gate == nil {
		p.mu.Unlock()
		return
	}
	if over {
		n = min(n, int(p.gate.held.Load()-p.gate.limit.Load()))
	}
	n = min(n, len(p.idle))
	if n <= 0 {
		p.mu.Unlock()
		return
	}
	excess := make([]C, n)
	for i := range excess {
		excess[i] = p.idle[i].conn
	}
	k := copy(p.idle, p.idle[n:])
	clear(p.idle[k:])
	p.idle = p.idle[:k]
	p.addSlots(-n, 0)
	p.nClosing.Add(int64(n))
	p.mu.Unlock()
	for _, c := range excess {
		p.closeCounted(c)
	}
}
