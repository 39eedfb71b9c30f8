package cluster

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
)

func TestTargetShare(t *testing.T) {
	require.Equal(t, 10, TargetShare(30, []string{"c", "a", "b"}, "a"))
	require.Equal(t, 15, TargetShare(30, []string{"c", "a"}, "c"))
	require.Equal(t, 4, TargetShare(10, []string{"b", "a", "c"}, "a"), "the remainder goes to the first ids")
	require.Equal(t, 3, TargetShare(10, []string{"b", "a", "c"}, "c"))
	require.Equal(t, 0, TargetShare(10, []string{"a"}, "z"))
	require.Equal(t, 0, TargetShare(2, []string{"a", "b", "c"}, "c"), "more instances than connections: the last get none")
}

// fleetSim is a fleet driven through NextBudgetStep as budget.go drives
// it: etcd holds the acknowledged shares; each instance's pools hold
// connections up to its limit.
type fleetSim struct {
	budget int
	etcd   map[string]int // acknowledged shares of live instances
	limit  map[string]int
	held   map[string]int
	live   []string
}

func (f *fleetSim) step(id string, r *rand.Rand) {
	s := NextBudgetStep(f.budget, f.live, f.etcd, id)
	f.limit[id] = min(f.limit[id], s.Limit) // a limit is lowered at once, raised after the write
	switch {
	case s.Shrink:
		// The pools close idle connections and busy ones come back, some
		// time later: only then is the lower share written.
		f.held[id] = min(f.held[id], s.Write+r.IntN(2))
		if f.held[id] <= s.Write {
			f.etcd[id] = s.Write
			f.limit[id] = s.Write
		}
	case s.Grow:
		f.etcd[id] = s.Write // the transaction: no other key changed since the read (steps are atomic here)
		f.limit[id] = s.Write
	default:
		f.limit[id] = s.Limit
	}
	// Clients borrow up to the limit.
	f.held[id] = max(f.held[id], r.IntN(f.limit[id]+1))
}

func (f *fleetSim) check(t *testing.T, what string) {
	sumAcked, sumHeld := 0, 0
	for _, id := range f.live {
		sumAcked += f.etcd[id]
		require.LessOrEqual(t, f.held[id], max(f.etcd[id], 0), "%s: %s holds more than it acknowledged", what, id)
		sumHeld += f.held[id]
	}
	require.LessOrEqual(t, sumAcked, f.budget, "%s: acknowledged shares %v exceed the budget", what, f.etcd)
	require.LessOrEqual(t, sumHeld, f.budget, "%s: held %v exceed the budget", what, f.held)
}

// For any sequence of joins, leaves (a crash: the key goes with the
// lease, the connections with the process) and steps in any order, the
// acknowledged shares never add up to more than the budget, no instance
// holds more than it acknowledged, and once every instance has stepped
// often enough the shares are the fair targets.
func TestBudgetNeverExceededAnySequence(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		f := &fleetSim{budget: 1 + r.IntN(40), etcd: map[string]int{}, limit: map[string]int{}, held: map[string]int{}}
		next := 0
		for op := range 200 {
			switch k := r.IntN(10); {
			case k == 0 || len(f.live) == 0: // join
				id := fmt.Sprintf("i%02d", next)
				next++
				f.live = append(f.live, id)
			case k == 1 && len(f.live) > 1: // leave
				i := r.IntN(len(f.live))
				id := f.live[i]
				f.live = append(f.live[:i], f.live[i+1:]...)
				delete(f.etcd, id)
				delete(f.held, id)
				delete(f.limit, id)
			default:
				f.step(f.live[r.IntN(len(f.live))], r)
			}
			f.check(t, fmt.Sprintf("seed %d op %d", seed, op))
		}
		for range 10 { // settle: everyone steps, clients give connections back
			for _, id := range f.live {
				f.held[id] = 0
				f.step(id, r)
				f.held[id] = 0
				f.check(t, fmt.Sprintf("seed %d settling", seed))
			}
		}
		for _, id := range f.live {
			require.Equal(t, TargetShare(f.budget, f.live, id), f.etcd[id], "seed %d: %s settled on its fair share", seed, id)
		}
	}
}

// FuzzBudgetStep: whatever etcd holds, a step never acknowledges more
// than the others leave of the budget, and never sets a limit above what
// is acknowledged.
func FuzzBudgetStep(f *testing.F) {
	f.Add(30, 10, 10, 10, 3, true)
	f.Add(30, 15, 15, 0, 3, false)
	f.Add(7, 0, 9, 9, 2, true)
	f.Fuzz(func(t *testing.T, budget, a, b, c, n int, has bool) {
		budget = budget % 10000
		if budget < 0 || n < 1 || n > 3 {
			t.Skip()
		}
		ids := []string{"a", "b", "c"}[:n]
		acked := map[string]int{}
		for i, v := range []int{a, b, c}[:n] {
			if i == 0 && !has {
				continue
			}
			acked[ids[i]] = v % 10000
		}
		s := NextBudgetStep(budget, ids, acked, "a")
		cur := acked["a"]
		require.LessOrEqual(t, s.Limit, max(cur, 0))
		if s.Grow {
			others := 0
			for id, v := range acked {
				if id != "a" {
					others += max(v, 0)
				}
			}
			require.LessOrEqual(t, others+s.Write, max(budget, others), "a raise must fit in the budget")
			require.LessOrEqual(t, s.Write, TargetShare(budget, ids, "a"))
		}
		if s.Shrink {
			require.Less(t, s.Write, cur)
		}
	})
}

// Every instance divides its own max_db_connections: a fleet whose
// instances disagree on it could exceed the smaller one, so it is part
// of the databases' fingerprint (and, unset, leaves the fingerprint of
// an instance from before the budget unchanged).
func TestFingerprintIncludesTheBudget(t *testing.T) {
	parse := func(doc string) *config.Config {
		cfg, err := config.Parse([]byte(doc), nil)
		require.NoError(t, err)
		return cfg
	}
	base := "users: [{name: app, password: p}]\ndatabases:\n  appdb:\n    hosts: [\"127.0.0.1:5432\"]\n"
	unset := FingerprintOf(parse(base))
	require.Equal(t, unset, FingerprintOf(parse(base+"    pool: {max_db_connections: 0}\n")))
	require.Equal(t, unset.Databases, digest([]struct {
		Name, DBName, PoolMode string
		Hosts                  []string
	}{{"appdb", "appdb", "session", []string{"127.0.0.1:5432"}}}), "the same digest as before the budget existed")
	thirty := FingerprintOf(parse(base + "    pool: {max_db_connections: 30}\n"))
	require.Equal(t, []string{"databases"}, unset.Differs(thirty))
	require.Equal(t, []string{"databases"}, thirty.Differs(FingerprintOf(parse(base+"    pool: {max_db_connections: 20}\n"))))
}
