package topology

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// Integration tests run the Monitor against a real primary with two
// streaming standbys, probing as pgtest.MonitorUser (pg_monitor plus
// EXECUTE on pg_promote: what failover.user needs, not a superuser).

func hostOf(c *pgserver.Cluster) Host {
	addr := c.Host + ":" + strconv.Itoa(c.Port)
	return Host{Name: addr, Network: "tcp", Address: addr}
}

func monitorDial() DialFunc {
	return BackendDialer(func(h Host) backend.Options {
		return backend.Options{Network: h.Network, Address: h.Address, Display: h.Name,
			User: pgtest.MonitorUser, Password: pgtest.MonitorPassword, Database: pgtest.AppDB,
			DialTimeout: 2 * time.Second, Retries: 5} // Retries is overridden: probes dial once
	})
}

// startReal runs a Monitor over set until the test ends.
func startReal(t *testing.T, set *pgtest.Set, cfg Config) *Monitor {
	t.Helper()
	logs := &syncbuf.Buffer{}
	for _, c := range set.All() {
		cfg.Hosts = append(cfg.Hosts, hostOf(c))
	}
	cfg.Database = pgtest.AppDB
	cfg.Prober = NewSQLProber(monitorDial())
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	m, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		if t.Failed() || testing.Verbose() {
			t.Logf("monitor log:\n%s", logs.String())
		}
	})
	return m
}

// waitFor waits (generously) for cond, checking it after every material
// change and after every few probes. Monitor.Wait alone is not enough here:
// it wakes on material changes only, and some conditions (a standby's lag
// back to zero while under MaxReplicaLag) are not one, so a condition that
// was false at the last change would never be checked again.
func waitFor(t *testing.T, m *Monitor, what string, cond func(Snapshot) bool) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		changed := m.Changed()
		s := m.Snapshot()
		if cond(s) {
			return s
		}
		select {
		case <-ctx.Done():
			require.NoError(t, ctx.Err(), "%s; last snapshot:\n%s", what, dump(s))
		case <-changed:
		case <-tick.C:
		}
	}
}

func dump(s Snapshot) string {
	out := fmt.Sprintf("primary=%q version=%d maxTimeline=%d\n", s.Primary, s.Version, s.MaxTimeline)
	for _, h := range s.Hosts {
		out += fmt.Sprintf("  %s reachable=%v role=%s tli=%d flush=%s recv=%s replay=%s paused=%v lag=%v/%dB known=%v err=%v\n",
			h.Name, h.Reachable, h.Role, h.Timeline, h.FlushLSN, h.ReceiveLSN, h.ReplayLSN, h.ReplayPaused, h.Lag, h.LagBytes, h.LagKnown, h.Err)
	}
	return out
}

// TestIntegrationRolesAndLag: the primary and both standbys are told apart
// by what they answer; with the primary idle no standby lags; a standby
// whose replay is paused while the primary writes lags, and Standbys drops
// it once that lag passes the limit.
func TestIntegrationRolesAndLag(t *testing.T) {
	set := pgtest.ReplicaSet(t, 2)
	ctx := t.Context()
	interval, maxLag := 100*time.Millisecond, 500*time.Millisecond
	// Standbys listed first: the order says nothing.
	m := startReal(t, &pgtest.Set{Primary: set.Standbys[0], Standbys: []*pgserver.Cluster{set.Standbys[1], set.Primary}},
		Config{Interval: interval, MaxReplicaLag: maxLag})
	p, s1, s2 := hostOf(set.Primary).Name, hostOf(set.Standbys[0]).Name, hostOf(set.Standbys[1]).Name

	s := waitFor(t, m, "roles", func(s Snapshot) bool {
		return s.Primary == p && role(s, s1) == RoleStandby && role(s, s2) == RoleStandby
	})
	t.Logf("first snapshot:\n%s", dump(s))
	for _, h := range s.Hosts {
		require.EqualValues(t, 1, h.Timeline, h.Name)
		require.NoError(t, h.Err)
	}
	ph, _ := s.PrimaryHost()
	require.NotZero(t, ph.FlushLSN)
	s = waitFor(t, m, "standbys caught up", func(s Snapshot) bool {
		return len(s.Standbys(time.Nanosecond)) == 2
	})

	require.NoError(t, set.Primary.ExecDB(ctx, pgtest.AppDB, "CREATE TABLE w (n int)"))
	require.NoError(t, set.Standbys[0].PauseReplay(ctx))
	// Write until the paused standby is found lagging past MaxReplicaLag;
	// the other one keeps up.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := set.Primary.ExecDB(ctx, pgtest.AppDB, fmt.Sprintf("INSERT INTO w VALUES (%d)", i)); err != nil {
				t.Errorf("insert: %v", err)
				return
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	s = waitFor(t, m, "paused standby lagging", func(s Snapshot) bool {
		h, _ := s.Host(s1)
		return h.Lagging
	})
	t.Logf("paused standby lagging:\n%s", dump(s))
	st1, _ := s.Host(s1)
	require.True(t, st1.ReplayPaused)
	require.Greater(t, st1.Lag, maxLag)
	require.NotZero(t, st1.LagBytes)
	// The other standby keeps up: it qualifies while the paused one does
	// not. Waited for rather than required of the first snapshot above:
	// on a loaded machine the other standby's replay can fall behind for a
	// moment too (its own lag, really), and a snapshot with both left out
	// proves nothing wrong. A monitor that never lets it qualify fails.
	standbyNames := func(s Snapshot) []string {
		var names []string
		for _, h := range s.Standbys(maxLag) {
			names = append(names, h.Name)
		}
		return names
	}
	s = waitFor(t, m, "the paused standby left out, the other one qualifying", func(s Snapshot) bool {
		h, _ := s.Host(s1)
		return h.Lagging && slices.Equal(standbyNames(s), []string{s2})
	})
	st1, _ = s.Host(s1)
	require.True(t, st1.ReplayPaused)
	require.Greater(t, st1.Lag, maxLag)

	require.NoError(t, set.Standbys[0].ResumeReplay(ctx))
	waitFor(t, m, "paused standby caught up", func(s Snapshot) bool {
		h, _ := s.Host(s1)
		return !h.ReplayPaused && !h.Lagging
	})
}

// TestIntegrationKillAndOutsidePromotion: kill -9 of the primary is seen as
// unreachable; a standby promoted from outside (pg_ctl promote) is reported
// as the writable primary, on timeline 2; the old primary, restarted, is
// fenced. How soon the promotion is seen is only printed: real time on a
// loaded machine proves nothing, and TestChangeSeenWithinOneInterval checks
// the bound in virtual time.
func TestIntegrationKillAndOutsidePromotion(t *testing.T) {
	set := pgtest.ReplicaSet(t, 2)
	ctx := t.Context()
	interval := time.Second
	restored := make(chan time.Duration, 10)
	m := startReal(t, set, Config{Interval: interval, Hooks: Hooks{
		PrimaryRestored: func(_, _ string, without time.Duration) { restored <- without },
	}})
	p, s1 := hostOf(set.Primary).Name, hostOf(set.Standbys[0]).Name
	waitFor(t, m, "primary", func(s Snapshot) bool { return s.Primary == p })

	require.NoError(t, set.Primary.Kill(ctx))
	s := waitFor(t, m, "primary unreachable", func(s Snapshot) bool { return role(s, p) == RoleUnknown })
	require.Empty(t, s.Primary)
	h, _ := s.Host(p)
	require.False(t, h.Reachable)
	require.False(t, h.DownSince.IsZero(), "not answering at all: %v", h.Err)
	require.Error(t, h.Err)
	t.Logf("after kill: %v", h.Err)

	require.NoError(t, set.Standbys[0].Promote(ctx)) // returns once promotion is done
	promoted := time.Now()
	s = waitFor(t, m, "promoted standby is primary", func(s Snapshot) bool { return s.Primary == s1 })
	seen := time.Since(promoted)
	t.Logf("promotion seen after %v (interval %v)", seen.Round(time.Millisecond), interval)
	h, _ = s.Host(s1)
	require.EqualValues(t, 2, h.Timeline, "the new timeline at once, not at the next checkpoint")
	require.Equal(t, 1, s.Failovers)
	select { // hooks run just after the snapshot changes
	case d := <-restored:
		require.Positive(t, d)
	case <-time.After(30 * time.Second):
		t.Fatal("PrimaryRestored hook not called")
	}

	require.NoError(t, set.Primary.Restart(ctx))
	s = waitFor(t, m, "old primary back", func(s Snapshot) bool { return role(s, p) != RoleUnknown })
	require.Equal(t, RoleFenced, role(s, p), "old primary on timeline 1 is fenced:\n%s", dump(s))
	require.Equal(t, s1, s.Primary)
}

// TestIntegrationAutoPromote: with auto-promotion on, killing the primary
// makes the Monitor promote a standby (as the monitoring role) no earlier
// than promote_after after the primary went silent; it becomes the writable
// primary on timeline 2, and the restarted old primary is fenced.
func TestIntegrationAutoPromote(t *testing.T) {
	set := pgtest.ReplicaSet(t, 2)
	ctx := t.Context()
	after := time.Second
	type attempt struct {
		host string
		at   time.Time
		auto bool
		err  error
	}
	attempts := make(chan attempt, 10)
	m := startReal(t, set, Config{Interval: 200 * time.Millisecond, AutoPromote: &AutoPromote{After: after},
		Hooks: Hooks{Promoted: func(_, host string, auto bool, err error) {
			attempts <- attempt{host, time.Now(), auto, err}
		}}})
	p := hostOf(set.Primary).Name
	waitFor(t, m, "primary", func(s Snapshot) bool { return s.Primary == p })
	require.NoError(t, set.Primary.ExecDB(ctx, pgtest.AppDB, "CREATE TABLE w (n int); INSERT INTO w VALUES (1)"))
	for _, st := range set.Standbys {
		require.NoError(t, st.WaitReplayed(ctx, set.Primary))
	}

	require.NoError(t, set.Primary.Kill(ctx))
	s := waitFor(t, m, "primary down", func(s Snapshot) bool { return role(s, p) == RoleUnknown })
	h, _ := s.Host(p)
	down := h.DownSince
	s = waitFor(t, m, "a standby promoted", func(s Snapshot) bool { return s.Primary != "" })
	a := <-attempts // the hook runs before the promoted host is probed again
	require.True(t, a.auto)
	require.NoError(t, a.err)
	require.Equal(t, a.host, s.Primary)
	require.GreaterOrEqual(t, a.at.Sub(down), after, "not before promote_after")
	t.Logf("promoted %s %v after the primary went silent (promote_after %v)", a.host, a.at.Sub(down).Round(time.Millisecond), after)
	var newPrimary *pgserver.Cluster
	for _, st := range set.Standbys {
		if hostOf(st).Name == s.Primary {
			newPrimary = st
		}
	}
	require.NotNil(t, newPrimary)
	rec, err := newPrimary.InRecovery(ctx)
	require.NoError(t, err)
	require.False(t, rec)
	tli, err := newPrimary.Timeline(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, tli)
	require.NoError(t, newPrimary.ExecDB(ctx, pgtest.AppDB, "INSERT INTO w VALUES (2)"))

	require.NoError(t, set.Primary.Restart(ctx))
	s = waitFor(t, m, "old primary back", func(s Snapshot) bool { return role(s, p) != RoleUnknown })
	require.Equal(t, RoleFenced, role(s, p))
	require.Equal(t, newPrimary.Host+":"+strconv.Itoa(newPrimary.Port), s.Primary)
	time.Sleep(time.Second) // several probe rounds: still exactly one promotion
	require.Equal(t, 1, m.Snapshot().Failovers)
	require.Empty(t, attempts)
}
