package dashboard

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

func s(labels map[string]string, v float64) Series { return Series{Labels: labels, Value: v} }

func pool(db, user string, extra ...string) map[string]string {
	m := map[string]string{"database": db, "user": user}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// snapshot at t0+sec of the named series.
func snap(sec int, series map[string][]Series) Snapshot {
	return Snapshot{At: t0.Add(time.Duration(sec) * time.Second), Series: series}
}

func TestBuildPoolsAndTopologyFromTheNewestSnapshot(t *testing.T) {
	now := snap(0, map[string][]Series{
		serverConnections: {s(pool("appdb", "app", "state", "active"), 3), s(pool("appdb", "app", "state", "idle"), 1),
			s(pool("other", "bob", "state", "active"), 0), s(pool("other", "bob", "state", "idle"), 2)},
		waitingClients:    {s(pool("appdb", "app"), 2), s(pool("other", "bob"), 0)},
		poolMaxSize:       {s(pool("appdb", "app"), 3)},
		clientConnections: {s(nil, 7)},
		serverRole: {s(map[string]string{"database": "appdb", "host": "b:2", "role": "primary"}, 1),
			s(map[string]string{"database": "appdb", "host": "a:1", "role": "standby"}, 1), s(map[string]string{"database": "appdb", "host": "a:1", "role": "fenced"}, 0)},
		serverUp:      {s(map[string]string{"database": "appdb", "host": "b:2"}, 1), s(map[string]string{"database": "appdb", "host": "a:1"}, 0)},
		replayLag:     {s(map[string]string{"database": "appdb", "host": "a:1"}, 0.25)},
		failovers:     {s(map[string]string{"database": "appdb"}, 2)},
		noPrimaryOld:  {s(map[string]string{"database": "appdb"}, 0)},
		pinnedClients: {s(map[string]string{"reason": "temp_table"}, 1)},
	})
	v := Build([]Snapshot{now}, Window, nil)
	up, down := true, false
	require.Equal(t, View{At: now.At, ClientConnections: f(7),
		Databases: []DatabaseView{{
			Name:           "appdb",
			Pools:          []PoolView{{User: "app", Active: f(3), Idle: f(1), Max: f(3), Waiting: f(2)}},
			BorrowTimeouts: ReasonCount{Reason: "borrow_timeout"},
			// The primary first.
			Hosts:     []HostView{{Host: "b:2", Role: "primary", Up: &up}, {Host: "a:1", Role: "standby", Up: &down, LagSeconds: f(0.25)}},
			Failovers: f(2), NoPrimarySeconds: f(0),
		}, {
			Name:           "other",
			Pools:          []PoolView{{User: "bob", Active: f(0), Idle: f(2), Waiting: f(0)}},
			BorrowTimeouts: ReasonCount{Reason: "borrow_timeout"},
		}},
		// One snapshot: no window, so no increases.
		Pins: []ReasonCount{{Reason: "temp_table", Now: f(1)}},
	}, v)
}

func TestBuildIncreasesAndPercentilesOverTheWindow(t *testing.T) {
	wait := func(v float64, b1, b2 float64) Series {
		return Series{Labels: pool("appdb", "app"), Value: v, Buckets: []Bucket{{0.001, b1}, {0.01, b2}}}
	}
	snaps := []Snapshot{
		// Too old to be the base: a newer one is a minute old too.
		snap(-90, map[string][]Series{poolWait: {wait(0, 0, 0)}, loginFailures: {s(map[string]string{"reason": "wrong_password"}, 0)}}),
		// The base.
		snap(-61, map[string][]Series{
			poolWait:         {wait(100, 100, 100)},
			poolTransactions: {s(pool("appdb", "app"), 1000)},
			loginFailures:    {s(map[string]string{"reason": "wrong_password"}, 4)},
			pinsTotal:        {s(map[string]string{"reason": "listen"}, 9)},
			borrowTimeouts:   {s(pool("appdb", "app"), 1)},
		}),
		snap(-30, nil),
		snap(0, map[string][]Series{
			// 100 more waits: 50 ≤ 1 ms, 50 in (1, 10] ms.
			poolWait:         {wait(200, 150, 200)},
			poolTransactions: {s(pool("appdb", "app"), 1610)},
			loginFailures:    {s(map[string]string{"reason": "wrong_password"}, 5), s(map[string]string{"reason": "access_denied"}, 2)},
			// Reset (a pool recreated): its whole value counts.
			pinsTotal:      {s(map[string]string{"reason": "listen"}, 3)},
			borrowTimeouts: {s(pool("appdb", "app"), 1)},
			// A transaction histogram without observations.
			transactionTime: {{Labels: pool("appdb", "app"), Buckets: []Bucket{{0.001, 0}}}},
		}),
	}
	v := Build(snaps, Window, map[string]time.Time{"appdb": t0.Add(-10 * time.Second)})
	require.Equal(t, 61.0, v.WindowSeconds)
	db := v.Databases[0]
	require.Equal(t, "appdb", db.Name)
	require.Equal(t, 100.0, *db.Wait.Count)
	require.InDelta(t, 0.001, *db.Wait.P50, 1e-12)
	require.InDelta(t, 0.001+0.009*45/50, *db.Wait.P95, 1e-12)
	require.InDelta(t, 0.001+0.009*49/50, *db.Wait.P99, 1e-12)
	require.Equal(t, Percentiles{Count: f(0)}, db.Transaction)
	require.InDelta(t, 610.0/61, *db.TransactionsPerSecond, 1e-12)
	require.Equal(t, ReasonCount{Reason: "borrow_timeout", LastWindow: f(0), Total: f(1)}, db.BorrowTimeouts)
	require.Equal(t, t0.Add(-10*time.Second), *db.LastFailover)
	require.Equal(t, []ReasonCount{
		{Reason: "access_denied", LastWindow: f(2), Total: f(2)}, // new in the window
		{Reason: "wrong_password", LastWindow: f(1), Total: f(5)},
	}, v.Refusals)
	require.Equal(t, []ReasonCount{{Reason: "listen", LastWindow: f(3), Total: f(3)}}, v.Pins)
}

func TestBuildWithoutABaseOldEnoughUsesTheOldest(t *testing.T) {
	c := func(sec int, v float64) Snapshot {
		return snap(sec, map[string][]Series{loginFailures: {s(map[string]string{"reason": "wrong_password"}, v)}})
	}
	v := Build([]Snapshot{c(-20, 1), c(-10, 2), c(0, 4)}, Window, nil)
	require.Equal(t, 20.0, v.WindowSeconds)
	require.Equal(t, 3.0, *v.Refusals[0].LastWindow)
	require.Equal(t, View{}, Build(nil, Window, nil))
}

func TestBuildReadsTheRenamedNoPrimaryGauge(t *testing.T) {
	v := Build([]Snapshot{snap(0, map[string][]Series{noPrimaryCurrent: {s(map[string]string{"database": "appdb"}, 4.5)}})}, Window, nil)
	require.Equal(t, 4.5, *v.Databases[0].NoPrimarySeconds)
}
