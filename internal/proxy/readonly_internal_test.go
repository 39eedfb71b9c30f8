package proxy

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/pool"
)

func TestReadModeFor(t *testing.T) {
	for _, tc := range []struct {
		ro       bool
		target   string
		mode     readMode
		roDef    bool
		code     string
		describe string
	}{
		{false, "", routePrimary, false, "", "main listener"},
		{false, "any", routePrimary, false, "", "any"},
		{false, "read-write", routePrimary, false, "", "read-write"},
		{false, "primary", routePrimary, false, "", "primary"},
		{false, "read-only", routeReadOnly, true, "", "read-only"},
		{false, "Read-Only", routeReadOnly, true, "", "case"},
		{false, "standby", routeStandby, false, "", "standby"},
		{false, "prefer-standby", routePreferStandby, false, "", "prefer-standby"},
		{true, "", routeReadOnly, true, "", "read-only listener"},
		{true, "any", routeReadOnly, true, "", "read-only listener, any"},
		{true, "standby", routeStandby, true, "", "read-only listener, standby"},
		{true, "prefer-standby", routePreferStandby, true, "", "read-only listener, prefer-standby"},
		{true, "read-write", 0, false, codeRejectedConnection, "read-write on the read-only listener"},
		{true, "primary", 0, false, codeRejectedConnection, "primary on the read-only listener"},
		{false, "prefer-read", 0, false, "22023", "invalid"},
	} {
		mode, roDef, err := readModeFor(tc.ro, tc.target)
		if tc.code != "" {
			var re *routeError
			require.ErrorAs(t, err, &re, tc.describe)
			require.Equal(t, tc.code, re.code, tc.describe)
			continue
		}
		require.NoError(t, err, tc.describe)
		require.Equal(t, tc.mode, mode, tc.describe)
		require.Equal(t, tc.roDef, roDef, tc.describe)
	}
}

func TestTakeTargetSessionAttrs(t *testing.T) {
	in := []frontend.Param{{Name: "application_name", Value: "a"}, {Name: "target_session_attrs", Value: "standby"},
		{Name: "search_path", Value: "s"}, {Name: "TARGET_SESSION_ATTRS", Value: "read-only"}}
	target, out := takeTargetSessionAttrs(in)
	require.Equal(t, "read-only", target)
	require.Equal(t, []frontend.Param{{Name: "application_name", Value: "a"}, {Name: "search_path", Value: "s"}}, out)
	require.Equal(t, "standby", in[1].Value, "the input is left alone")

	plain := []frontend.Param{{Name: "application_name", Value: "a"}}
	target, out = takeTargetSessionAttrs(plain)
	require.Empty(t, target)
	require.Equal(t, plain, out)
}

// TestChooseLeastBusy checks the standby choice: only qualifying hosts,
// the least busy first, ties in turn, tried hosts skipped; and that
// choosing allocates nothing.
func TestChooseLeastBusy(t *testing.T) {
	topo := &dbTopology{name: "db"}
	never := make(chan struct{})
	topo.reads.cur.Store(&readView{changed: never, names: []string{"p", "s1", "s2", "s3"}, ok: []bool{false, true, true, false}})
	dial := func(context.Context) (*backend.Conn, error) {
		c, _ := net.Pipe()
		return &backend.Conn{Conn: c}, nil
	}
	newSet := func() *readSet {
		rs := &readSet{}
		for i, name := range []string{"p", "s1", "s2", "s3"} {
			e := &poolEntry{ro: &readTarget{topo: topo, idx: i, name: name}}
			e.pool = pool.New(pool.Config{MaxSize: 4}, dial, nil)
			t.Cleanup(e.pool.Close)
			rs.hosts = append(rs.hosts, e)
		}
		return rs
	}
	a, b := newSet(), newSet()
	topo.reads.sets.Store(&[]*readSet{a, b})
	r := &readRoute{topo: topo, set: a, db: &config.Database{Name: "db"}}
	v := topo.reads.view(topo)

	seen := map[int]int{}
	for range 100 {
		seen[r.choose(v, 0)]++
	}
	require.Equal(t, map[int]int{1: 50, 2: 50}, seen, "ties alternate between the qualifying standbys")
	require.Equal(t, 2, r.choose(v, 1<<1), "a tried host is skipped")
	require.Equal(t, -1, r.choose(v, 1<<1|1<<2), "nothing left")

	// Another user's sessions keep two connections busy on s1: s2 is
	// chosen until s1 is the less busy one.
	c1, err := b.hosts[1].pool.Acquire(context.Background())
	require.NoError(t, err)
	c2, err := b.hosts[1].pool.Acquire(context.Background())
	require.NoError(t, err)
	c3, err := a.hosts[2].pool.Acquire(context.Background())
	require.NoError(t, err)
	for range 10 {
		require.Equal(t, 2, r.choose(v, 0), "s1 has 2 busy connections, s2 one")
	}
	b.hosts[1].pool.Release(c1)
	b.hosts[1].pool.Release(c2)
	for range 10 {
		require.Equal(t, 1, r.choose(v, 0), "s1 has none busy, s2 one")
	}
	a.hosts[2].pool.Release(c3)

	require.True(t, a.hosts[1].ro.qualifies())
	require.False(t, a.hosts[3].ro.qualifies())

	allocs := testing.AllocsPerRun(1000, func() {
		r.choose(topo.reads.view(topo), 0)
		a.hosts[2].ro.qualifies()
	})
	require.Zero(t, allocs, "choosing a standby allocates")
}
