package pool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two pools of one database (two users) share a gate of 3: together they
// never open more than 3, a borrow beyond waits and is served when the
// other pool's connection comes back, and an idle connection of the
// other pool is closed to make room for a waiting borrow.
func TestGateBoundsPoolsTogether(t *testing.T) {
	d := &fakeDialer{}
	g := NewGate(3)
	a := newTestPool(Config{MaxSize: 10, BorrowTimeout: time.Minute}, d)
	b := newTestPool(Config{MaxSize: 10, BorrowTimeout: time.Minute}, d)
	a.JoinGate(g)
	b.JoinGate(g)

	a1, a2 := acquire(t, a), acquire(t, a)
	b1 := acquire(t, b)
	require.Equal(t, 3, g.Held())

	got := make(chan *fakeConn)
	go func() { got <- acquire(t, b) }()
	require.Eventually(t, func() bool { return b.Stats().Waiting == 1 }, 10*time.Second, time.Millisecond)
	require.EqualValues(t, 3, d.open.Load())

	a.Release(a1) // idle in a: evicted for b's waiter (the gate is full)
	b2 := <-got
	require.EqualValues(t, 3, d.maxOpen.Load(), "never more than the gate's limit")
	require.Equal(t, 3, g.Held())

	for _, c := range []*fakeConn{a2} {
		a.Release(c)
	}
	b.Release(b1)
	b.Release(b2)
	a.Close()
	b.Close()
	requireAllClosedOnce(t, d)
	require.Zero(t, g.Held())
}

// Lowering the limit closes idle connections at once and busy ones only
// when they are released, never one in use; WaitHeld returns when the
// pools hold no more than the new limit. Raising it serves waiters.
func TestGateShrinksWithoutTouchingBusy(t *testing.T) {
	d := &fakeDialer{}
	g := NewGate(4)
	p := newTestPool(Config{MaxSize: 10, BorrowTimeout: time.Minute}, d)
	p.JoinGate(g)
	c1, c2, c3, c4 := acquire(t, p), acquire(t, p), acquire(t, p), acquire(t, p)
	p.Release(c1)
	p.Release(c2)

	g.SetLimit(1)
	require.EqualValues(t, 2, c1.closes.Load()+c2.closes.Load(), "the idle ones are closed at once")
	require.Zero(t, c3.closes.Load()+c4.closes.Load(), "busy connections are never closed")

	done := make(chan error, 1)
	go func() { done <- g.WaitHeld(context.Background(), 1) }()
	p.Release(c3) // over the limit: closed, not kept
	require.EqualValues(t, 1, c3.closes.Load())
	require.NoError(t, <-done)
	p.Release(c4) // at the limit: kept
	require.Zero(t, c4.closes.Load())
	require.LessOrEqual(t, g.Held(), 1)

	// A borrow at the limit waits; raising the limit serves it.
	held := acquire(t, p)
	got := make(chan *fakeConn)
	go func() { got <- acquire(t, p) }()
	require.Eventually(t, func() bool { return p.Stats().Waiting == 1 }, 10*time.Second, time.Millisecond)
	g.SetLimit(2)
	c := <-got
	p.Release(c)
	p.Release(held)
	p.Close()
	requireAllClosedOnce(t, d)
	require.Zero(t, g.Held())
}

// Many borrowers on three pools sharing a gate of 5: the dialer never
// sees more than 5 open, and every borrow is served.
func TestGateUnderContention(t *testing.T) {
	d := &fakeDialer{}
	g := NewGate(5)
	pools := make([]*Pool[*fakeConn], 3)
	for i := range pools {
		pools[i] = newTestPool(Config{MaxSize: 4, BorrowTimeout: time.Minute}, d)
		pools[i].JoinGate(g)
	}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pools[i%3]
			for j := range 50 {
				c := acquire(t, p)
				if j%7 == 0 {
					p.Discard(c)
				} else {
					p.Release(c)
				}
				if i == 0 && j%10 == 0 {
					g.SetLimit(3 + j%4)
				}
			}
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, d.maxOpen.Load(), int64(6), "never more than the largest limit set")
	for _, p := range pools {
		p.Close()
	}
	requireAllClosedOnce(t, d)
	require.Zero(t, g.Held())
}
