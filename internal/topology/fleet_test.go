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
	// afterWrite, if set, runs inside a successful Write (mu held): a
	// test's way to change leadership right after an intent lands.
	afterWrite func(e *fakeEtcd, d Decision)
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
			if e.afterWrite != nil {
				e.afterWrite(e, d)
			}
		}
	})
	return err
}

// primaryAndStandby is the servers most fleet tests start from: p, a
// primary, and s, its standby, caught up, both on timeline 1.
func primaryAndStandby() *fakeProber {
	f := newFake()
	f.set("p", fakeServer{obs: primaryObs(1, 500)})
	f.set("s", fakeServer{obs: standbyObs(1, 500)})
	return f
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
		f := primaryAndStandby()
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
		f := primaryAndStandby()
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
		hs[0].wait("q primary, p fenced", func(s Snapshot) bool { return s.Primary == "q" && role(s, "p") == RoleFenced })
		require.True(t, strings.Contains(hs[0].logs.String(), "fleet's decision in etcd names another"), hs[0].logs.String())
		e.edit(func(e *fakeEtcd) { e.d = Decision{Epoch: 5, Primary: "p", Timeline: 1, Done: true} })
		hs[0].wait("p primary, q fenced", func(s Snapshot) bool { return s.Primary == "p" && role(s, "q") == RoleFenced })
	})
}

// TestDecideFleet: the core's rules, one view at a time.
func TestDecideFleet(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	up := func(name string, o Observation, r Role) HostState {
		return HostState{Host: Host{Name: name}, Reachable: true, Role: r, Observation: o, LastProbe: now}
	}
	down := func(name string, since time.Duration) HostState {
		return HostState{Host: Host{Name: name}, LastProbe: now, DownSince: now.Add(-since)}
	}
	promoteS := decision{target: "s", why: "p silent"}
	cases := []struct {
		name string
		v    fleetView
		want fleetActionKind
		tgt  string
		ep   uint64
		why  string
	}{
		{name: "not leading", v: fleetView{available: true, policy: promoteS}, want: fleetWait, why: "another instance leads"},
		{name: "etcd down", v: fleetView{leading: true, unavailable: "timeout", policy: promoteS, decided: true, decision: Decision{Epoch: 1, Primary: "p", Done: true}},
			want: fleetWait, why: "disabled while etcd is unreachable: timeout; otherwise: promote s"},
		{name: "bootstrap", v: fleetView{leading: true, available: true, primary: "p", hosts: []HostState{up("p", primaryObs(3, 1), RolePrimary)}},
			want: fleetBootstrap, tgt: "p", ep: 1},
		{name: "promote", v: fleetView{leading: true, available: true, policy: promoteS, decided: true, decision: Decision{Epoch: 4, Primary: "p", Done: true}},
			want: fleetPromote, tgt: "s", ep: 5},
		{name: "primary fine", v: fleetView{leading: true, available: true, primary: "p", decided: true, decision: Decision{Epoch: 4, Primary: "p", Done: true}},
			want: fleetWait, why: "writable (epoch 4)"},
		{name: "intent done already", v: fleetView{leading: true, available: true, decided: true, decision: Decision{Epoch: 4, Primary: "s"},
			hosts: []HostState{up("s", primaryObs(2, 1), RoleUnknown)}}, want: fleetComplete, tgt: "s", ep: 4},
		{name: "intent to finish, though another has more WAL", v: fleetView{leading: true, available: true, decided: true, decision: Decision{Epoch: 4, Primary: "s"},
			policy: decision{target: "s2"}, hosts: []HostState{up("s", standbyObs(1, 1), RoleStandby), up("s2", standbyObs(1, 9), RoleStandby)}},
			want: fleetFinish, tgt: "s", ep: 4},
		{name: "intent's server silent, not long enough", v: fleetView{leading: true, available: true, decided: true, decision: Decision{Epoch: 4, Primary: "s"},
			policy: decision{target: "s2"}, after: 10 * time.Second, now: now, hosts: []HostState{down("s", 5*time.Second), up("s2", standbyObs(1, 9), RoleStandby)}},
			want: fleetWait, why: "waiting for s"},
		{name: "intent's server gone", v: fleetView{leading: true, available: true, decided: true, decision: Decision{Epoch: 4, Primary: "s"},
			policy: decision{target: "s2"}, after: 10 * time.Second, now: now, hosts: []HostState{down("s", 11*time.Second), up("s2", standbyObs(1, 9), RoleStandby)}},
			want: fleetPromote, tgt: "s2", ep: 5},
		{name: "adopt", v: fleetView{leading: true, available: true, decided: true, decision: Decision{Epoch: 4, Primary: "p", Done: true}, maxTimeline: 2,
			after: time.Second, now: now, hosts: []HostState{down("p", time.Minute), up("q", primaryObs(2, 1), RoleFenced)}},
			want: fleetAdopt, tgt: "q", ep: 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := decideFleet(c.v)
			require.Equal(t, c.want, a.kind, a.why)
			require.Equal(t, c.tgt, a.target)
			require.Equal(t, c.ep, a.epoch)
			require.Contains(t, a.why, c.why)
		})
	}
}

// TestFleetRefusesPromoteOffLeader: SWITCHOVER's promotion on an
// instance that does not lead is refused, and nothing is promoted.
func TestFleetRefusesPromoteOffLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := primaryAndStandby()
		e := newFakeEtcd("b")
		hs := fleetOf(t, f, e, []string{"p", "s"}, "a", "b")
		defer stopAll(hs)
		hs[0].wait("p", func(s Snapshot) bool { return s.Primary == "p" })
		synctest.Wait()
		require.ErrorContains(t, hs[0].m.FleetRefusal(), "another instance of the fleet leads")
		require.ErrorContains(t, hs[0].m.Promote(context.Background(), "s"), "another instance of the fleet leads")
		require.NoError(t, hs[1].m.FleetRefusal())
		require.NoError(t, hs[1].m.Promote(context.Background(), "s"))
		for _, h := range hs {
			h.wait("s primary", func(s Snapshot) bool { return s.Primary == "s" && role(s, "p") == RoleFenced })
		}
		require.Len(t, f.promoted(), 1)
		d, _ := e.decision()
		require.Equal(t, Decision{Epoch: 2, Primary: "s", Timeline: 2, Done: true, Leader: "b"}, d)
	})
}

// TestFleetDecisionNamingUnknownServer: a decision naming a server this
// instance does not have leaves it routing on its own probes.
func TestFleetDecisionNamingUnknownServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := primaryAndStandby()
		e := newFakeEtcd("")
		e.d, e.have = Decision{Epoch: 2, Primary: "elsewhere:5432", Done: true}, true
		hs := fleetOf(t, f, e, []string{"p", "s"}, "a")
		defer stopAll(hs)
		hs[0].wait("p", func(s Snapshot) bool { return s.Primary == "p" })
		require.Contains(t, hs[0].logs.String(), "names a server this instance does not have")
	})
}
