package cluster

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
)

// fakeLimiter stands for a database's pools: held is what they hold
// (busy connections the test releases by hand: a lower limit never
// closes them).
type fakeLimiter struct {
	mu          sync.Mutex
	limit, held int
}

func (l *fakeLimiter) SetLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
}

func (l *fakeLimiter) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

func (l *fakeLimiter) set(held int) {
	l.mu.Lock()
	l.held = held
	l.mu.Unlock()
}

func startTestBudget(t *testing.T, endpoint, id string, total int, l *fakeLimiter) *Budget {
	t.Helper()
	b, err := StartBudget(BudgetOptions{Config: clusterConfig(endpoint), InstanceID: id,
		Budgets: map[string]int{"appdb": total}, Limiters: map[string]Limiter{"appdb": l}})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.Close(ctx)
	})
	return b
}

func share(b *Budget) int { return b.Shares()["appdb"] }

// A newcomer's share becomes usable only as the others acknowledge
// smaller ones, and an instance whose connections are busy acknowledges
// its smaller share only once they came back: meanwhile the newcomer
// gets what is left, and the acknowledged shares never add up to more
// than the budget. An instance that leaves gives its share to the rest.
func TestBudgetHandOverWaitsForBusyConnections(t *testing.T) {
	etcd := etcdtest.Start(t)
	la, lb, lc := &fakeLimiter{}, &fakeLimiter{}, &fakeLimiter{}
	a := startTestBudget(t, etcd.Endpoint(), "a", 10, la)
	b := startTestBudget(t, etcd.Endpoint(), "b", 10, lb)
	waitFor(t, "a and b at 5 each", func() bool { return share(a) == 5 && share(b) == 5 })
	la.set(5) // a's five connections are busy

	// What the pools may hold: each limit is lowered before a smaller
	// share is written and raised after a larger one.
	w := watchBudget(10, func(l *fakeLimiter) int { return l.limit }, la, lb, lc)

	c := startTestBudget(t, etcd.Endpoint(), "c", 10, lc)
	// Targets: a 4, b 3, c 3. a holds 5 busy connections, so it keeps
	// 5 acknowledged; c gets only what b and a leave.
	waitFor(t, "b to shrink to 3 and c to get the 2 left", func() bool { return share(b) == 3 && share(c) == 2 && share(a) == 5 })
	la.mu.Lock()
	require.Equal(t, 4, la.limit, "a's pools may not open more than its new target meanwhile")
	la.mu.Unlock()
	la.set(4) // one of a's connections comes back (and is closed)
	waitFor(t, "a to acknowledge 4 and c to grow to 3", func() bool { return share(a) == 4 && share(c) == 3 })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	c.Close(ctx) // revokes its lease: a and b grow at once
	cancel()
	waitFor(t, "a and b to take c's share", func() bool { return share(a) == 5 && share(b) == 5 })
	require.Empty(t, w.stop(), "the limits of the pools exceeded the budget")
}

// budgetWatch samples, every millisecond until stop, what the pools of
// its limiters may hold together, and keeps every sum over the budget.
type budgetWatch struct {
	mu      sync.Mutex
	over    []int
	done    chan struct{}
	sampled sync.WaitGroup
}

// watchBudget starts a budgetWatch; hold says what one limiter's pools
// may hold (its mu held).
func watchBudget(budget int, hold func(*fakeLimiter) int, ls ...*fakeLimiter) *budgetWatch {
	w := &budgetWatch{done: make(chan struct{})}
	w.sampled.Go(func() {
		for {
			select {
			case <-w.done:
				return
			default:
			}
			sum := 0
			for _, l := range ls {
				l.mu.Lock()
				sum += hold(l)
				l.mu.Unlock()
			}
			if sum > budget {
				w.mu.Lock()
				w.over = append(w.over, sum)
				w.mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	})
	return w
}

// exceeded reports whether a sample was over the budget so far, and the
// first few such sums.
func (w *budgetWatch) exceeded() (bool, []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.over) > 0, slices.Clone(w.over[:min(len(w.over), 5)])
}

// stop ends the sampling and returns every sum that was over.
func (w *budgetWatch) stop() []int {
	close(w.done)
	w.sampled.Wait()
	return w.over
}

// While etcd is down an instance keeps the share it acknowledged and
// never grows, even when another instance has stopped; when etcd is back
// and the stopped instance's lease expired, the survivor grows.
func TestBudgetKeepsItsShareWhileEtcdIsDown(t *testing.T) {
	etcd := etcdtest.Start(t)
	la, lb := &fakeLimiter{}, &fakeLimiter{}
	a := startTestBudget(t, etcd.Endpoint(), "a", 10, la)
	b := startTestBudget(t, etcd.Endpoint(), "b", 10, lb)
	waitFor(t, "a and b at 5 each", func() bool { return share(a) == 5 && share(b) == 5 })

	etcd.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	b.Close(ctx) // its revoke cannot reach etcd
	cancel()
	// A check that something does not happen: give a a few polls (a
	// slow machine only makes the check weaker, never fail wrongly).
	time.Sleep(3 * budgetPoll)
	require.Equal(t, 5, share(a), "no growth while etcd is down")
	la.mu.Lock()
	require.Equal(t, 5, la.limit)
	la.mu.Unlock()

	etcd.Start()
	waitFor(t, "a to grow to the whole budget once b's lease is gone", func() bool { return share(a) == 10 })
}
