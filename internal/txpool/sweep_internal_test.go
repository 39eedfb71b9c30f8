package txpool

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeWatched and fakeHopper stand for an attachment read inline and a
// client whose stack grew: the sweeps' logic is timers only.
type fakeWatched struct{ fired atomic.Int32 }

func (f *fakeWatched) fireWatch() { f.fired.Add(1) }

type fakeHopper struct {
	active atomic.Int64
	asked  atomic.Int32
}

func (f *fakeHopper) lastActiveGen() int64 { return f.active.Load() }
func (f *fakeHopper) askHop()              { f.asked.Add(1) }

func newSweeps(t *testing.T) (*sweeps, func()) {
	w := &sweeps{}
	w.init()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx) })
	return w, func() { cancel(); wg.Wait() }
}

func (w *sweeps) registerForTest(a watched) {
	w.watchMu.Lock()
	w.inline[a] = w.watchGen
	w.watchMu.Unlock()
	if w.watchSleep.Load() {
		w.wake()
	}
}

// An answer awaited for a full tick is handed over (fired once) within
// two ticks; one withdrawn in time never fires; with nothing registered
// the watch stops ticking, and a registration starts it again.
func TestInlineWatchFiresAfterAFullTickAndSleepsWhenUnused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, stop := newSweeps(t)
		defer stop()
		quick := &fakeWatched{}
		w.registerForTest(quick)
		synctest.Wait()
		w.watchMu.Lock()
		delete(w.inline, quick) // the answer came before a tick
		w.watchMu.Unlock()
		slow := &fakeWatched{}
		w.registerForTest(slow)
		time.Sleep(inlineWait) // one tick: not yet a full one for slow
		synctest.Wait()
		if slow.fired.Load() != 0 {
			t.Fatalf("fired after less than a full tick")
		}
		time.Sleep(inlineWait)
		synctest.Wait()
		if slow.fired.Load() != 1 || quick.fired.Load() != 0 {
			t.Fatalf("fired: slow %d (want 1), quick %d (want 0)", slow.fired.Load(), quick.fired.Load())
		}
		time.Sleep(idleTicks * inlineWait)
		synctest.Wait()
		if !w.watchSleep.Load() {
			t.Fatalf("the watch still ticks with nothing registered")
		}
		again := &fakeWatched{}
		w.registerForTest(again)
		time.Sleep(2 * inlineWait)
		synctest.Wait()
		if again.fired.Load() != 1 || slow.fired.Load() != 1 {
			t.Fatalf("after sleeping: fired %d (want 1); earlier one %d (want 1)", again.fired.Load(), slow.fired.Load())
		}
	})
}

// A client busy at every sweep is never asked to move; one idle for a
// full period is asked once; the sweep then stops ticking.
func TestHopSweepMovesOnlyIdleClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, stop := newSweeps(t)
		defer stop()
		busy, idle := &fakeHopper{}, &fakeHopper{}
		w.enroll(busy)
		w.enroll(idle)
		for range 5 {
			busy.active.Store(w.hopGen.Load())
			time.Sleep(hopAfter)
			synctest.Wait()
		}
		if busy.asked.Load() != 0 {
			t.Fatalf("a busy client was asked to move")
		}
		if idle.asked.Load() != 1 {
			t.Fatalf("the idle client was asked %d times, want 1", idle.asked.Load())
		}
		w.forget(busy)
		time.Sleep(2 * hopAfter)
		synctest.Wait()
		if !w.hopSleep.Load() {
			t.Fatalf("the hop sweep still ticks with nothing registered")
		}
	})
}
