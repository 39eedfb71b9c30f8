package topology

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeEtcd is the fleet's shared state as an in-memory value: one
// decision, which instance leads, whether etcd answers. The real one is
// cluster.Election (tested against a real etcd in internal/daemon).
type fakeEtcd struct {
	mu      sync.Mutex
	d       Decision
	have    bool
	leader  string
	down    bool
	writes  []Decision
	changed chan struct{}
}

func newFakeEtcd(leader string) *fakeEtcd {
	return &fakeEtcd{leader: leader, changed: make(chan struct{})}
}

func (e *fakeEtcd) edit(fn func(e *fakeEtcd)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(e)
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *fakeEtcd) decision() (Decision, []Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.d, append([]Decision(nil), e.writes...)
}

// fakeFleet is one instance's view of fakeEtcd.
type fakeFleet struct {
	e  *fakeEtcd
	id string
}

func (f fakeFleet) Decision() (Decision, bool) {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	return f.e.d, f.e.have
}

func (f fakeFleet) Changed() <-chan struct{} {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	return f.e.changed
}

func (f fakeFleet) Leading() bool {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	return f.e.leader == f.id
}

func (f fakeFleet) Available() (bool, string) {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	return !f.e.down, "etcd is down"
}

func (f fakeFleet) Write(ctx context.Context, d Decision) error {
	var err error
	f.e.edit(func(e *fakeEtcd) {
		switch {
		case e.down:
			err = errors.New("etcd is down")
		case e.leader != f.id:
			err = errors.New("not the leader")
		case !(d.Epoch == e.d.Epoch+1 || (d.Epoch == e.d.Epoch && d.Done && !e.d.Done && d.Primary == e.d.Primary)):
			err = errors.New("stale decision")
		default:
			d.Leader = f.id
			e.d, e.have = d, true
			e.writes = append(e.writes, d)
		}
	})
	return err
}

// fleetOf starts one monitor per instance id, all probing the same
// servers and sharing e.
func fleetOf(t *testing.T, f *fakeProber, e *fakeEtcd, names []string, ids ...string) []*harness {
	var hs []*harness
	for _, id := range ids {
		h := start(t, f, Config{Hosts: hosts(names...), AutoPromote: &AutoPromote{After: 5 * time.Second}})
		h.m.SetFleet(fakeFleet{e: e, id: id})
		hs = append(hs, h)
	}
	return hs
}

func stopAll(hs []*harness) {
	for _, h := range hs {
		h.stop()
	}
}

// TestFleetOnePromotion: three instances, one leader. The leader records
// the primary in use (epoch 1, nothing promoted); when it dies, exactly
// one promotion happens, as an intent then done (epoch 2, the new
// timeline), and every instance routes to the new primary.
func TestFleetOnePromotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{obs: primaryObs(1, 500)})
		f.set("s", fakeServer{obs: standbyObs(1, 500)})
		e := newFakeEtcd("b")
		hs := fleetOf(t, f, e, []string{"p", "s"}, "a", "b", "c")
		defer stopAll(hs)
		for _, h := range hs {
			h.wait("p primary", func(s Snapshot) bool { return s.Primary == "p" })
		}
		synctest.Wait()
		d, writes := e.decision()
		require.Equal(t, Decision{Epoch: 1, Primary: "p", Timeline: 1, Done: true, Leader: "b"}, d)
		require.Len(t, writes, 1)

		f.edit("p", func(s *fakeServer) { s.down = true })
		for _, h := range hs {
			h.wait("s primary", func(s Snapshot) bool { return s.Primary == "s" })
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Len(t, f.promoted(), 1, "one promotion for three instances")
		d, writes = e.decision()
		require.Equal(t, Decision{Epoch: 2, Primary: "s", Timeline: 2, Done: true, Leader: "b"}, d)
		require.Equal(t, []Decision{{Epoch: 1, Primary: "p", Timeline: 1, Done: true, Leader: "b"},
			{Epoch: 2, Primary: "s", Leader: "b"}, {Epoch: 2, Primary: "s", Timeline: 2, Done: true, Leader: "b"}}, writes)

		// The old primary comes back on timeline 1: fenced everywhere.
		f.edit("p", func(s *fakeServer) { s.down = false })
		for _, h := range hs {
			h.wait("p fenced", func(s Snapshot) bool { return role(s, "p") == RoleFenced && s.Primary == "s" })
		}
	})
}

// TestFleetEtcdDownNeverPromotes: with etcd unreachable the leader keeps
// the primary it knows and never promotes, and says why; with etcd back
// the failover proceeds.
func TestFleetEtcdDownNeverPromotes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{obs: primaryObs(1, 500)})
		f.set("s", fakeServer{obs: standbyObs(1, 500)})
		e := newFakeEtcd("a")
		hs := fleetOf(t, f, e, []string{"p", "s"}, "a", "b")
		defer stopAll(hs)
		for _, h := range hs {
			h.wait("epoch 1", func(s Snapshot) bool { d, _ := e.decision(); return s.Primary == "p" && d.Epoch == 1 })
		}
		e.edit(func(e *fakeEtcd) { e.down = true })
		f.edit("p", func(s *fakeServer) { s.down = true })
		time.Sleep(time.Minute) // twelve times promote_after
		synctest.Wait()
		require.Empty(t, f.promoted(), "promoted while etcd was unreachable")
		require.Contains(t, hs[0].logs.String(), "failover blocked")
		require.Contains(t, hs[0].logs.String(), "failover is disabled while etcd is unreachable")
		for _, h := range hs {
			require.Equal(t, "", h.m.Snapshot().Primary)
		}

		e.edit(func(e *fakeEtcd) { e.down = false })
		for _, h := range hs {
			h.wait("s primary", func(s Snapshot) bool { return s.Primary == "s" })
		}
		synctest.Wait()
		require.Len(t, f.promoted(), 1)
		d, _ := e.decision()
		require.Equal(t, uint64(2), d.Epoch)
	})
}

// TestFleetFinishesUnfinishedIntent: a leader wrote an intent and died
// before promoting; the next leader promotes the server the intent
// names, under the same epoch, even though another standby has more
// WAL; a target that is gone is replaced by a new decision.
func TestFleetFinishesUnfinishedIntent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{down: true})
		f.set("s1", fakeServer{obs: standbyObs(1, 400)})
		f.set("s2", fakeServer{obs: standbyObs(1, 500)})
		e := newFakeEtcd("")
		e.d, e.have = Decision{Epoch: 7, Primary: "s1", Leader: "dead"}, true
		hs := fleetOf(t, f, e, []string{"p", "s1", "s2"}, "a")
		defer stopAll(hs)
		synctest.Wait()
		require.Empty(t, f.promoted(), "no leader, no promotion")
		e.edit(func(e *fakeEtcd) { e.leader = "a" })
		hs[0].wait("s1 primary", func(s Snapshot) bool { return s.Primary == "s1" })
		synctest.Wait()
		require.Equal(t, "s1", f.promoted()[0].host)
		d, _ := e.decision()
		require.Equal(t, Decision{Epoch: 7, Primary: "s1", Timeline: 2, Done: true, Leader: "a"}, d)

		// An intent naming a server that has gone silent: after
		// promote_after another standby is chosen, under a new epoch.
		f2 := newFake()
		f2.set("p", fakeServer{down: true})
		f2.set("s1", fakeServer{down: true})
		f2.set("s2", fakeServer{obs: standbyObs(1, 500)})
		e2 := newFakeEtcd("a")
		e2.d, e2.have = Decision{Epoch: 3, Primary: "s1", Leader: "dead"}, true
		hs2 := fleetOf(t, f2, e2, []string{"p", "s1", "s2"}, "a")
		defer stopAll(hs2)
		hs2[0].wait("s2 primary", func(s Snapshot) bool { return s.Primary == "s2" })
		d, _ = e2.decision()
		require.Equal(t, uint64(4), d.Epoch)
		require.Len(t, f2.promoted(), 1)
	})
}

// TestFleetFencesServerNotNamed: a server that claims to be primary but
// is not the one etcd names is never written to, though it is on the
// same timeline and a single sluice would have kept it.
func TestFleetFencesServerNotNamed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{obs: primaryObs(1, 500)})
		f.set("q", fakeServer{obs: primaryObs(1, 500)})
		e := newFakeEtcd("")
		e.d, e.have = Decision{Epoch: 4, Primary: "q", Timeline: 1, Done: true}, true
		hs := fleetOf(t, f, e, []string{"p", "q"}, "a")
		defer stopAll(hs)
		s := hs[0].wait("q primary", func(s Snapshot) bool { return s.Primary == "q" })
		require.Equal(t, RoleFenced, role(s, "p"))
		require.True(t, strings.Contains(hs[0].logs.String(), "fleet's decision in etcd names another"), hs[0].logs.String())
		e.edit(func(e *fakeEtcd) { e.d = Decision{Epoch: 5, Primary: "p", Timeline: 1, Done: true} })
		s = hs[0].wait("p primary", func(s Snapshot) bool { return s.Primary == "p" })
		require.Equal(t, RoleFenced, role(s, "q"))
	})
}
