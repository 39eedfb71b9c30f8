package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// errRefused stands for a server that cannot be reached.
var errRefused = errors.New("connect: connection refused")

// dialDeadlines records the deadline of every dial's context (zero: none).
type dialDeadlines struct {
	mu sync.Mutex
	at []time.Time
}

func (r *dialDeadlines) note(ctx context.Context) {
	dl, _ := ctx.Deadline()
	r.mu.Lock()
	r.at = append(r.at, dl)
	r.mu.Unlock()
}

func (r *dialDeadlines) all() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

// untilDone is a dial to a server that is down: like backend.Dial with a
// deadline, it keeps trying until its context ends and then reports the
// server's error, not the context's.
func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return errRefused
}

// The whole borrow, waiting in the queue and then dialling on the slot it
// was given, ends at BorrowTimeout after the borrow began: the dial gets
// what is left of it, not a limit of its own (today's main dialled without
// any deadline, so this borrow never ended).
func TestBorrowTimeoutBoundsQueueWaitAndDialTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bt = 10 * time.Second
		var seen dialDeadlines
		d := &fakeDialer{}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: bt}, d)
		a := acquire(t, p)
		d.hook = func(ctx context.Context, n int) error { seen.note(ctx); return untilDone(ctx) }

		start := time.Now()
		got := goAcquire(context.Background(), p)
		synctest.Wait()
		require.Equal(t, 1, p.Stats().Waiting)
		time.Sleep(4 * time.Second) // the holder's connection breaks after 4s
		p.Discard(a)                // its slot goes to the waiter, which dials
		r := <-got
		require.ErrorIs(t, r.err, errRefused)
		require.Equal(t, bt, time.Since(start), "queue wait (4s) + dial (6s) = borrow_timeout")
		require.Equal(t, []time.Time{start.Add(bt)}, seen.all(), "the dial ends at the borrow's deadline")
		require.Equal(t, Stats{Dials: 1, DialFailures: 1}, p.Stats())
		p.Close()
	})
}

// A borrow that finds room dials at once, under the same deadline; with
// BorrowTimeout 0 it dials without one (bounded by the dial's own
// retries), because 0 only means "never queue".
func TestDialForBorrowCarriesItsDeadline(t *testing.T) {
	for _, bt := range []time.Duration{30 * time.Second, 0} {
		synctest.Test(t, func(t *testing.T) {
			var seen dialDeadlines
			d := &fakeDialer{hook: func(ctx context.Context, n int) error { seen.note(ctx); return errRefused }}
			p := newTestPool(Config{MaxSize: 1, BorrowTimeout: bt}, d)
			start := time.Now()
			_, err := p.Acquire(context.Background())
			require.ErrorIs(t, err, errRefused)
			want := time.Time{}
			if bt > 0 {
				want = start.Add(bt)
			}
			require.Equal(t, []time.Time{want}, seen.all())
			p.Close()
		})
	}
}

// Several acquisitions sharing one Deadline (another server tried after
// the first could not be reached) share one limit: the second gets only
// what the first left.
func TestSharedDeadlineSpansAcquisitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bt = 10 * time.Second
		var seen dialDeadlines
		hook := func(ctx context.Context, n int) error { seen.note(ctx); return untilDone(ctx) }
		first := newTestPool(Config{MaxSize: 1, BorrowTimeout: bt}, &fakeDialer{hook: func(ctx context.Context, n int) error {
			seen.note(ctx)
			time.Sleep(3 * time.Second) // a slow refusal
			return errRefused
		}})
		second := newTestPool(Config{MaxSize: 1, BorrowTimeout: bt}, &fakeDialer{hook: hook})
		start := time.Now()
		var dl Deadline
		_, err := first.AcquireWithin(context.Background(), &dl)
		require.ErrorIs(t, err, errRefused)
		require.Equal(t, start.Add(bt), dl.At())
		_, err = second.AcquireWithin(context.Background(), &dl)
		require.ErrorIs(t, err, errRefused)
		require.Equal(t, bt, time.Since(start), "both together took borrow_timeout")
		require.Equal(t, []time.Time{start.Add(bt), start.Add(bt)}, seen.all())
		first.Close()
		second.Close()
	})
}

// A borrow that times out in the queue while the pool's slots are taken
// by dials that fail reports the last dial error, not "all busy"; it
// still matches ErrExhausted. A successful dial clears it.
func TestQueuedTimeoutNamesLastDialError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := false
		d := &fakeDialer{}
		d.hook = func(ctx context.Context, n int) error {
			if n == 1 {
				return errRefused // fails at once
			}
			if !up {
				return untilDone(ctx)
			}
			return nil
		}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: 10 * time.Second}, d)
		_, err := p.Acquire(context.Background())
		require.ErrorIs(t, err, errRefused)

		dialer := goAcquire(context.Background(), p) // takes the slot, dials until its deadline
		synctest.Wait()
		time.Sleep(time.Second)
		dl := Deadline{at: time.Now().Add(5 * time.Second)} // a borrow with less time left
		_, err = p.AcquireWithin(context.Background(), &dl)
		var ue *UnreachableError
		require.ErrorAs(t, err, &ue)
		require.ErrorIs(t, err, ErrExhausted)
		require.ErrorIs(t, err, errRefused)
		require.Contains(t, err.Error(), "borrow_timeout")
		require.Contains(t, err.Error(), errRefused.Error())
		require.ErrorIs(t, (<-dialer).err, errRefused)

		up = true
		c := acquire(t, p)
		_, err = p.AcquireWithin(context.Background(), &Deadline{at: time.Now().Add(time.Second)})
		require.Equal(t, ErrExhausted, err, "after a successful dial, a timeout means busy again")
		p.Release(c)
		p.Close()
	})
}

// A dial that the borrow's deadline cut short before the server said
// anything (a waiter granted the slot with little time left, or a machine
// too slow to finish a connect in time) reports what the server said to
// the dials before it, not the context's "i/o timeout" (seen once under
// load in outagetest: the queued client's message lacked "connection
// refused").
func TestDialCutShortByDeadlineNamesEarlierDialError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		d.hook = func(ctx context.Context, n int) error {
			if n == 1 {
				return errRefused
			}
			<-ctx.Done()
			return ctx.Err() // cut short: no word from the server
		}
		p := newTestPool(Config{MaxSize: 1, BorrowTimeout: 10 * time.Second}, d)
		_, err := p.Acquire(context.Background())
		require.ErrorIs(t, err, errRefused)

		_, err = p.Acquire(context.Background())
		var ue *UnreachableError
		require.ErrorAs(t, err, &ue)
		require.ErrorIs(t, err, errRefused)
		p.Close()
	})
}

// The same when the cut-short dial reports what net.Dial reports when its
// context's deadline passes: an "i/o timeout" net error (not
// context.DeadlineExceeded), wrapped, and noted as a failed attempt
// first, as backend.Dial does. It failed in outagetest under load: the
// queued client's message said "dial tcp ...: i/o timeout".
func TestDialTimedOutByDeadlineNamesEarlierDialError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		var p *Pool[*fakeConn]
		d.hook = func(ctx context.Context, n int) error {
			if n == 1 {
				return errRefused
			}
			<-ctx.Done()
			p.NoteDialFailure(ioTimeout{}) // the attempt, as backend.Dial reports it
			return fmt.Errorf("could not connect: %w", ioTimeout{})
		}
		p = newTestPool(Config{MaxSize: 1, BorrowTimeout: 10 * time.Second}, d)
		_, err := p.Acquire(context.Background())
		require.ErrorIs(t, err, errRefused)

		_, err = p.Acquire(context.Background())
		var ue *UnreachableError
		require.ErrorAs(t, err, &ue, "%v", err)
		require.ErrorIs(t, err, errRefused)
		p.Close()
	})
}

// ioTimeout is net's "i/o timeout": a net.Error whose Timeout is true.
type ioTimeout struct{}

func (ioTimeout) Error() string   { return "dial tcp 127.0.0.1:1: i/o timeout" }
func (ioTimeout) Timeout() bool   { return true }
func (ioTimeout) Temporary() bool { return true }

// A client whose borrow times out in the queue while another's dial is
// still retrying a server that refuses learns why from the attempts that
// dial has reported so far (NoteDialFailure), not "all busy": the dial
// reports its own end only later (seen under load in outagetest: the
// queued client got 53300 instead of 08006).
func TestQueuedTimeoutDuringFailingDialNamesItsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		var p *Pool[*fakeConn]
		d.hook = func(ctx context.Context, n int) error {
			p.NoteDialFailure(errRefused) // its first attempt failed; it keeps trying
			return untilDone(ctx)
		}
		p = newTestPool(Config{MaxSize: 1, BorrowTimeout: 10 * time.Second}, d)
		dialer := goAcquire(context.Background(), p)
		synctest.Wait()
		_, err := p.AcquireWithin(context.Background(), &Deadline{at: time.Now().Add(5 * time.Second)})
		var ue *UnreachableError
		require.ErrorAs(t, err, &ue, "queued past its deadline while the dial fails: %v", err)
		require.ErrorIs(t, err, errRefused)
		require.ErrorIs(t, (<-dialer).err, errRefused)
		p.Close()
	})
}
