package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
)

// An upgrade in a fleet with a budget: the new process (same instance
// id) joins while the old one still holds its connections, then the old
// one leaves. What the instances' pools may hold (each pool's limit, or
// the busy connections it keeps over it) never adds up to more than the
// budget, and the new process ends with the instance's share. Before,
// the new process wrote the instance id's key too: it ignored the old
// process's share (another lease's, "about to go") and took a whole
// share beside it, 15 of 10.
func TestBudgetOfAnUpgradedProcessNeverAddsToItsPredecessors(t *testing.T) {
	etcd := etcdtest.Start(t)
	lOld, lOther, lNew := &fakeLimiter{}, &fakeLimiter{}, &fakeLimiter{}
	old := startTestBudget(t, etcd.Endpoint(), "up", 10, lOld)
	other := startTestBudget(t, etcd.Endpoint(), "other", 10, lOther)
	waitFor(t, "up and other at 5 each", func() bool { return share(old) == 5 && share(other) == 5 })
	lOld.set(5) // the old process's connections are busy until it exits

	w := watchBudget(10, func(l *fakeLimiter) int { return max(l.limit, l.held) }, lOld, lOther, lNew)

	next, err := StartBudget(BudgetOptions{Config: clusterConfig(etcd.Endpoint()), InstanceID: "up", Successor: true,
		Budgets: map[string]int{"appdb": 10}, Limiters: map[string]Limiter{"appdb": lNew}})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		next.Close(ctx)
	})
	// Three members for a while: other shrinks to its target (4), the
	// old process keeps the 5 its busy connections need, the new one
	// gets the 1 left.
	waitFor(t, "the new process to get what is left", func() bool {
		over, _ := w.exceeded()
		return over || share(next) == 1 && share(other) == 4
	})
	over, first := w.exceeded()
	require.False(t, over, "while both processes live, the pools of the fleet may hold more than the budget: %v", first)

	lOld.set(0) // the old process's clients are gone: it exits
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	old.Close(ctx)
	cancel()
	waitFor(t, "the new process to have the instance's share", func() bool { return share(next) == 5 && share(other) == 5 })
	require.Empty(t, w.stop(), "the pools of the fleet may hold more than the budget")
}
