package txpool

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Two periodic sweeps replace timers a transaction would otherwise arm
// (docs/design/tx-handoff.md): arming a read deadline earlier than the
// one the sleeping netpoller waits for wakes it, and moving a goroutine
// after every round costs a goroutine start, an exit and a stack copy.
//
//   - The inline watch (every inlineWait) hands an answer that the client
//     goroutine has awaited for a full tick to a reader goroutine: it sets
//     a past read deadline on the server socket, the inline read returns,
//     and the client goroutine starts run and goes back to its client
//     (where it sees a client that leaves during a long query).
//   - The hop sweep (every hopAfter) asks a client goroutine that was
//     idle for a full period, by a past read deadline on its client
//     socket, to park (park.go: no goroutine at all while idle) or, when
//     it cannot be parked and its stack grew, to move to a fresh
//     goroutine (2 kB stack); a busy client is never asked. A parkable
//     client is enrolled by each goroutine that serves it, any other once
//     its stack grew. The sweep also ends the parked clients' idle
//     timeouts (parking.expire).
//
// Per transaction a client pays a registration under watchMu while it
// reads inline and at most one atomic store per sweep period.
// Both sweeps run in one goroutine (run), owned by the proxy's server
// (started by Start, ended with its background context); each stops
// ticking once nothing has been registered with it for a while, so an
// idle sluice wakes no one.
const (
	inlineWait = 2 * time.Millisecond
	hopAfter   = time.Second
	// idleTicks is how many empty ticks the inline watch makes before
	// it stops: at one client a registration comes every transaction,
	// and restarting the ticker every time would wake the sweep goroutine
	// once per transaction.
	idleTicks = 500
)

// watched is what the inline watch acts on (an attachment read inline).
type watched interface{ fireWatch() }

// hopper is what the hop sweep acts on (a client whose stack grew).
type hopper interface {
	lastActiveGen() int64
	askHop()
}

type sweeps struct {
	kick chan struct{} // wakes run when a sweep that had stopped is needed

	watchMu    sync.Mutex
	watchGen   int64             // guarded by watchMu
	inline     map[watched]int64 // attachment -> watchGen when it began to wait
	watchSleep atomic.Bool       // the watch's ticker is stopped: kick on register

	hopGen   atomic.Int64
	hopMu    sync.Mutex
	grown    map[hopper]struct{} // clients the hop sweep watches for idleness
	hopSleep atomic.Bool
	period   atomic.Int64 // the hop sweep's, in ns (0: hopAfter); Env.SetParkAfter

	park parking // park.go
	// handOff: idle clients are offered to the upgrade hand-off rather
	// than parked (handoff.go); savedPeriod is the period to restore
	// after it (StartHandOff's and EndHandOff's caller's, one at a time).
	handOff     atomic.Bool
	savedPeriod int64
}

// hopPeriod is the hop sweep's period.
func (w *sweeps) hopPeriod() time.Duration {
	if d := time.Duration(w.period.Load()); d > 0 {
		return d
	}
	return hopAfter
}

func (w *sweeps) init() {
	w.kick = make(chan struct{}, 1)
	w.inline = map[watched]int64{}
	w.grown = map[hopper]struct{}{}
	w.watchSleep.Store(true)
	w.hopSleep.Store(true)
}

func (w *sweeps) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run is the sweeps' goroutine; it returns when ctx ends.
func (w *sweeps) run(ctx context.Context) {
	watch := time.NewTicker(inlineWait)
	watch.Stop()
	period := w.hopPeriod()
	hop := time.NewTicker(period)
	hop.Stop()
	defer watch.Stop()
	defer hop.Stop()
	watchOn, hopOn, empty := false, false, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
			if p := w.hopPeriod(); p != period {
				period = p
				if hopOn {
					hop.Reset(period)
				}
			}
		case <-watch.C:
			if w.watchInline() {
				empty = 0
			} else if empty++; empty >= idleTicks {
				watch.Stop()
				watchOn = false
				w.watchSleep.Store(true)
			}
		case <-hop.C:
			if !w.sweepHops() {
				hop.Stop()
				hopOn = false
				w.hopSleep.Store(true)
			}
		}
		// A registration that saw a sleeping sweep kicked; one that came
		// after the sleep flag was set is seen by these checks.
		if !watchOn && w.watchSleep.Load() && w.watchPending() {
			w.watchSleep.Store(false)
			watch.Reset(inlineWait)
			watchOn, empty = true, 0
		}
		if !hopOn && w.hopSleep.Load() && w.hopPending() {
			w.hopSleep.Store(false)
			hop.Reset(period)
			hopOn = true
		}
	}
}

func (w *sweeps) watchPending() bool {
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	return len(w.inline) > 0
}

func (w *sweeps) hopPending() bool {
	w.hopMu.Lock()
	n := len(w.grown)
	w.hopMu.Unlock()
	return n > 0 || w.park.timedParked()
}

// watchInline fires the watch of every inline read registered before the
// previous tick; it reports whether any is registered.
func (w *sweeps) watchInline() bool {
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	w.watchGen++
	for a, since := range w.inline {
		if since < w.watchGen-1 {
			delete(w.inline, a)
			a.fireWatch()
		}
	}
	return len(w.inline) > 0
}

// beginInline registers an inline read (client goroutine). endInline
// must follow before the connection can leave the client.
func (w *sweeps) beginInline(a *attachment) {
	w.watchMu.Lock()
	w.inline[a] = w.watchGen
	a.watchFired = false
	w.watchMu.Unlock()
	if w.watchSleep.Load() {
		w.wake()
	}
}

// endInline withdraws the registration and, if the watch fired, its
// deadline, under watchMu: the watch can no longer fire once the entry
// is gone, so no past deadline can stay on a connection that goes back
// to the pool afterwards.
func (w *sweeps) endInline(a *attachment) {
	w.watchMu.Lock()
	delete(w.inline, a)
	if a.watchFired {
		a.watchFired = false
		a.Conn.Conn.SetReadDeadline(time.Time{})
	}
	w.watchMu.Unlock()
}

// fireWatch (watchMu held) ends an inline read that waited a full tick.
func (a *attachment) fireWatch() {
	a.watchFired = true
	a.Conn.Conn.SetReadDeadline(time.Unix(1, 0))
}

// sweepHops asks every enrolled client idle since the previous sweep to
// park or move, and starts again the parked clients whose idle deadline
// passed; it reports whether it must tick again (a client is enrolled,
// or a parked one has a deadline).
func (w *sweeps) sweepHops() bool {
	g := w.hopGen.Add(1)
	w.hopMu.Lock()
	for c := range w.grown {
		if c.lastActiveGen() < g-1 {
			delete(w.grown, c)
			c.askHop()
		}
	}
	more := len(w.grown) > 0
	w.hopMu.Unlock()
	return w.park.expire(time.Now()) || more
}

// enroll registers a client for the hop sweep (its goroutine's): a
// parkable one when a goroutine starts serving it, or again after it
// could not be parked; another once its goroutine's stack grew. The
// sweep forgets it when it asks.
func (w *sweeps) enroll(c hopper) {
	w.hopMu.Lock()
	w.grown[c] = struct{}{}
	w.hopMu.Unlock()
	if w.hopSleep.Load() {
		w.wake()
	}
}

// forget drops a client that ends.
func (w *sweeps) forget(c hopper) {
	w.hopMu.Lock()
	delete(w.grown, c)
	w.hopMu.Unlock()
}
