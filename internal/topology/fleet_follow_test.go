package topology

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFleetFollowersRouteWithinOneProbeOfTheDecision: the instances
// that do not lead route writes to the promoted server as soon as the
// leader records its promotion in etcd (the decision's change probes
// every server at once), not at their next scheduled probe: in virtual
// time, well within one probe interval of the decision (issue #15's
// "all instances route to the new primary within one probe interval").
func TestFleetFollowersRouteWithinOneProbeOfTheDecision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		f := primaryAndStandby()
		e := newFakeEtcd("b")
		var hs []*harness
		for _, id := range []string{"a", "b", "c"} {
			h := start(t, f, Config{Hosts: hosts("p", "s"), Interval: interval, AutoPromote: &AutoPromote{After: 5 * time.Second}})
			h.m.SetFleet(fakeFleet{e: e, id: id})
			hs = append(hs, h)
		}
		defer stopAll(hs)
		for _, h := range hs {
			h.wait("p primary", func(s Snapshot) bool { return s.Primary == "p" })
		}
		// Off the probes' phase: the followers' next probe is not due when
		// the decision lands.
		time.Sleep(interval / 3)
		f.edit("p", func(s *fakeServer) { s.down = true })

		// The moment the leader records the promotion done.
		var decidedAt time.Time
		for {
			e.mu.Lock()
			d, ch := e.d, e.changed
			e.mu.Unlock()
			if d.Epoch == 2 && d.Done {
				decidedAt = time.Now()
				break
			}
			<-ch
		}
		for _, h := range []*harness{hs[0], hs[2]} {
			h.wait("s primary", func(s Snapshot) bool { return s.Primary == "s" })
			// Virtual time: it only moves when every goroutine waits, so
			// this bounds when the follower switched from above.
			require.Less(t, time.Since(decidedAt), interval/10,
				"a follower routed to the new primary %v after the decision (probe interval %v)", time.Since(decidedAt), interval)
		}
		require.Len(t, f.promoted(), 1)
	})
}

// TestFleetLeaderThatLosesLeadershipAfterItsIntentDoesNotPromote: the
// leader writes its intent and loses leadership at once (its etcd
// session expired, as after an etcd outage): it must not go on to
// pg_promote, since the next leader finishes the same intent, and two
// promotions would follow. Exactly one promotion, by the new leader.
func TestFleetLeaderThatLosesLeadershipAfterItsIntentDoesNotPromote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := primaryAndStandby()
		e := newFakeEtcd("a")
		e.afterWrite = func(e *fakeEtcd, d Decision) {
			if !d.Done && d.Leader == "a" {
				e.leader = "b"
			}
		}
		hs := fleetOf(t, f, e, []string{"p", "s"}, "a", "b")
		defer stopAll(hs)
		for _, h := range hs {
			h.wait("p primary", func(s Snapshot) bool { d, _ := e.decision(); return s.Primary == "p" && d.Epoch == 1 })
		}
		f.edit("p", func(s *fakeServer) { s.down = true })
		for _, h := range hs {
			h.wait("s primary", func(s Snapshot) bool { return s.Primary == "s" })
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Len(t, f.promoted(), 1, "one promotion: the new leader finishes the intent, the old one stops")
		d, _ := e.decision()
		require.Equal(t, Decision{Epoch: 2, Primary: "s", Timeline: 2, Done: true, Leader: "b"}, d)
		require.Contains(t, hs[0].logs.String(), "no longer leads")
	})
}
