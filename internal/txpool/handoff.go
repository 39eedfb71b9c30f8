package txpool

import (
	"context"
	"time"

	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
)

// The upgrade hand-off (docs/design/upgrade-handoff.md): while the old
// process hands its clients to a new one, every idle client is *offered*
// instead of parked. An offered client is exactly a parked one (framer
// at a message boundary, no attachment, nothing in flight, no pins),
// taken out of the epoll set, held in parking.offered until the hand-off
// takes it (TakeOffered): the Env's table owns it as it owns a parked
// client, and whoever takes it owns it after. The taker either hands it
// over and ends it (End, then the session closes its own descriptor; the
// client's peer connection lives on in the new process) or keeps it
// here (Stay, then Session.Resume): a client is never dropped because of
// the hand-off.
//
// What offers a client: the hand-off's start (every parked client), the
// hop sweep's request to an idle client (its period is shortened to
// offerPeriod meanwhile), the end of a client's round (one atomic load
// per round: a pgbench client is never idle for a full period, and is
// offered between two transactions), and, for a transaction whose end
// the attachment's goroutine read (BEGIN ... COMMIT), the detach, which
// asks the client's goroutine as the hop sweep does (askHop). Bytes the client
// sent meanwhile wait in the socket's kernel buffer, which moves with
// the descriptor.

// offerPeriod is the hop sweep's period during a hand-off: how long a
// client must be idle before it is asked to be offered.
const offerPeriod = 10 * time.Millisecond

// flagStay is set on a client that must not be offered again: its
// hand-off failed, or it cannot move (it stays on this process).
const flagStay uint32 = 1 << 7

// StartHandOff begins offering idle clients; ready is signalled whenever
// one is offered. EndHandOff stops it.
func (e *Env) StartHandOff() (ready <-chan struct{}) {
	p := &e.sweeps.park
	p.mu.Lock()
	if p.offerReady == nil {
		p.offerReady = make(chan struct{}, 1)
	}
	e.sweeps.handOff.Store(true)
	for fd := range p.table {
		if c := p.table[fd].c; c != nil && !c.has(flagStay) {
			if took := p.withdrawLocked(c); took != nil {
				p.offered = append(p.offered, took)
			}
		}
	}
	ch := p.offerReady
	p.mu.Unlock()
	e.sweeps.savedPeriod = e.sweeps.period.Swap(int64(offerPeriod))
	e.sweeps.wake()
	signal(ch)
	return ch
}

// EndHandOff stops offering clients; those offered and not taken are
// started again (they stay here).
func (e *Env) EndHandOff() {
	p := &e.sweeps.park
	p.mu.Lock()
	e.sweeps.handOff.Store(false)
	left := p.offered
	p.offered = nil
	p.mu.Unlock()
	e.sweeps.period.Store(e.sweeps.savedPeriod)
	e.sweeps.wake()
	for _, c := range left {
		c.sess.Resume()
	}
}

// TakeOffered returns the clients offered since the last call; the
// caller owns each (see above).
func (e *Env) TakeOffered() []*Client {
	p := &e.sweeps.park
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.offered
	p.offered = nil
	return l
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// offer hands an idle client to the hand-off (its goroutine's, at the
// end of a round or when the hop sweep asked). true: the Env owns it and
// the caller returns without touching it (as for Parked).
func (c *Client) offer() bool {
	if !c.has(flagParkable) || c.has(flagStay) || !c.up.AtBoundary() || c.draining.Load() || c.killed() {
		return false
	}
	if a, err := c.liveAttachment(); a != nil || err != nil || len(c.Pins) > 0 || c.Load {
		return false
	}
	if sub := c.listen.Load(); sub != nil && sub.Pending() {
		return false // deliver what is queued here first (Serve does, next round)
	}
	p := &c.env.sweeps.park
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.env.sweeps.handOff.Load() || c.has(flagNoPark) {
		return false
	}
	p.offered = append(p.offered, c)
	signal(p.offerReady)
	return true
}

// Stay keeps a client taken from TakeOffered on this process for good
// (its hand-off failed or it cannot move); the caller then calls
// Session.Resume.
func (c *Client) Stay() { c.set(flagStay, true) }

// MayMove reports whether the client could still be offered: not TLS,
// parkable here, not kept, not pinned for good (LOAD).
func (c *Client) MayMove() bool {
	return c.has(flagParkable) && !c.has(flagStay) && !c.Load
}

// Session is the client's session (proxy's adapter).
func (c *Client) Session() Session { return c.sess }

// Context is the client's context (it carries its startup parameters,
// see Params.Ctx).
func (c *Client) Context() context.Context { return c.ctx }

// Saved is what of an idle client's state moves to another process
// besides what its session knows: the settings it SET, its prepared
// statements. The values are the client's own: encode them before the
// client runs again.
func (c *Client) Saved() (want map[string]string, stmts []txcore.SavedStatement) {
	return c.Want, c.SavedStatements()
}

// Restore gives a client made by Init, before Ready, what Saved returned
// on the process that handed it over; home is the pool its connections
// come from, whose set of parsed statements learns the client's (see
// txcore.Client.SeedParsed), and which answers its Parses locally from
// the start, as after a login's first borrow.
func (c *Client) Restore(want map[string]string, stmts []txcore.SavedStatement, home Home) error {
	if err := c.RestoreStatements(stmts); err != nil {
		return err
	}
	if len(want) > 0 {
		c.Want = want
	}
	if home != nil {
		c.parsed = home.Parsed()
		c.SeedParsed(c.parsed)
	}
	return nil
}
