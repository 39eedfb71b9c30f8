package topology

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// fakeServer is what the fake prober answers for one host.
type fakeServer struct {
	obs    Observation
	down   bool          // does not answer at all
	srvErr bool          // answers with an error (57P03, starting up)
	hang   bool          // the probe blocks until its timeout
	delay  time.Duration // the answer comes this long after the probe starts
}

var errRefused = errors.New("dial tcp: connection refused")

// fakeProber serves probes from a table the test edits.
type fakeProber struct {
	mu         sync.Mutex
	servers    map[string]*fakeServer
	promotions []promotion
	promoteErr error
}

type promotion struct {
	host string
	at   time.Time
}

func newFake() *fakeProber { return &fakeProber{servers: map[string]*fakeServer{}} }

// set replaces host name's answers.
func (f *fakeProber) set(name string, s fakeServer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers[name] = &s
}

func (f *fakeProber) edit(name string, fn func(s *fakeServer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.servers[name])
}

func (f *fakeProber) Probe(ctx context.Context, h Host) (Observation, error) {
	f.mu.Lock()
	s, ok := f.servers[h.Name]
	var cp fakeServer
	if ok {
		cp = *s
	}
	f.mu.Unlock()
	if cp.delay > 0 {
		select {
		case <-time.After(cp.delay):
		case <-ctx.Done():
			return Observation{}, ctx.Err()
		}
	}
	switch {
	case !ok || cp.down:
		return Observation{}, errRefused
	case cp.hang:
		<-ctx.Done()
		return Observation{}, ctx.Err()
	case cp.srvErr:
		return Observation{}, &backend.ConnectError{Addr: h.Name, Attempts: 1,
			Err: &backend.ServerError{Response: &pgproto3.ErrorResponse{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}}}
	}
	return cp.obs, nil
}

// Promote turns a standby into a primary on the next timeline, as
// PostgreSQL would.
func (f *fakeProber) Promote(ctx context.Context, h Host) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.promotions = append(f.promotions, promotion{h.Name, time.Now()})
	if f.promoteErr != nil {
		return f.promoteErr
	}
	s := f.servers[h.Name]
	if s == nil || s.down || !s.obs.InRecovery {
		return errors.New("recovery is not in progress")
	}
	s.obs = Observation{Timeline: s.obs.Timeline + 1, FlushLSN: max(s.obs.ReceiveLSN, s.obs.ReplayLSN)}
	return nil
}

func (f *fakeProber) promoted() []promotion {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]promotion(nil), f.promotions...)
}

func primaryObs(tli uint32, lsn LSN) Observation {
	return Observation{Timeline: tli, FlushLSN: lsn}
}

func standbyObs(tli uint32, lsn LSN) Observation {
	return Observation{InRecovery: true, Timeline: tli, ReceiveLSN: lsn, ReplayLSN: lsn}
}

func hosts(names ...string) []Host {
	hs := make([]Host, len(names))
	for i, n := range names {
		hs[i] = Host{Name: n, Network: "tcp", Address: n + ":5432"}
	}
	return hs
}

// harness runs a Monitor inside a synctest bubble.
type harness struct {
	t    *testing.T
	m    *Monitor
	f    *fakeProber
	logs *syncbuf.Buffer
	stop func()
}

func start(t *testing.T, f *fakeProber, cfg Config) *harness {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.Prober = f
	cfg.Database = "appdb"
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	h := &harness{t: t, m: m, f: f, logs: logs}
	h.stop = func() {
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("monitor log:\n%s", logs.String())
		}
	})
	return h
}

// wait returns the first snapshot satisfying cond, failing after a minute
// of virtual time.
func (h *harness) wait(what string, cond func(Snapshot) bool) Snapshot {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := h.m.Wait(ctx, cond)
	require.NoError(h.t, err, "%s; last snapshot %+v", what, s)
	return s
}

// settle lets every probe due now finish.
func (h *harness) settle() Snapshot {
	synctest.Wait()
	return h.m.Snapshot()
}

func role(s Snapshot, name string) Role {
	hs, _ := s.Host(name)
	return hs.Role
}

func TestRolesComeFromServersNotListOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("a", fakeServer{obs: standbyObs(1, 100)})
		f.set("b", fakeServer{obs: primaryObs(1, 100)})
		f.set("c", fakeServer{down: true})
		h := start(t, f, Config{Hosts: hosts("a", "b", "c")})
		defer h.stop()
		s := h.settle()
		require.Equal(t, "b", s.Primary)
		require.Equal(t, RoleStandby, role(s, "a"))
		require.Equal(t, RolePrimary, role(s, "b"))
		require.Equal(t, RoleUnknown, role(s, "c"))
		c, _ := s.Host("c")
		require.False(t, c.Reachable)
		require.ErrorIs(t, c.Err, errRefused)
		require.False(t, c.DownSince.IsZero())
		require.False(t, c.LastProbe.IsZero())
		require.True(t, c.LastSeen.IsZero())
		p, ok := s.PrimaryHost()
		require.True(t, ok)
		require.Equal(t, "b:5432", p.Address)
		require.True(t, s.NoPrimarySince.IsZero())
		require.EqualValues(t, 1, s.MaxTimeline)
		require.Len(t, s.Standbys(0), 1)
		require.Zero(t, s.Failovers, "finding the first primary is no failover")
		require.Contains(t, h.logs.String(), "server unreachable")
	})
}

func TestTwoPrimariesNewerTimelineWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("old", fakeServer{obs: primaryObs(1, 500)})
		f.set("new", fakeServer{obs: primaryObs(2, 300)})
		h := start(t, f, Config{Hosts: hosts("old", "new")})
		defer h.stop()
		s := h.settle()
		require.Equal(t, "new", s.Primary)
		require.Equal(t, RoleFenced, role(s, "old"))
		logs := h.logs.String()
		require.Contains(t, logs, "level=ERROR")
		require.Contains(t, logs, "old (timeline 1, fenced)")
		require.Contains(t, logs, "new (timeline 2, used)")
		// Logged once per situation, not once per probe.
		time.Sleep(10 * time.Second)
		h.settle()
		require.Equal(t, 1, strings.Count(h.logs.String(), "several servers claim to be primary"))
	})
}

// TestOldPrimaryStaysFenced: after a failover the old primary comes back on
// its old timeline while the new primary is down: it is fenced, never
// writable, and there is no primary at all.
func TestOldPrimaryStaysFenced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("a", fakeServer{obs: primaryObs(1, 100)})
		f.set("b", fakeServer{obs: standbyObs(1, 100)})
		h := start(t, f, Config{Hosts: hosts("a", "b")})
		defer h.stop()
		h.wait("a primary", func(s Snapshot) bool { return s.Primary == "a" })

		f.edit("a", func(s *fakeServer) { s.down = true })
		h.wait("no primary", func(s Snapshot) bool { return s.Primary == "" })
		f.edit("b", func(s *fakeServer) { s.obs = primaryObs(2, 200) }) // promoted from outside
		s := h.wait("b primary", func(s Snapshot) bool { return s.Primary == "b" })
		require.Equal(t, 1, s.Failovers)

		f.edit("b", func(s *fakeServer) { s.down = true })
		f.edit("a", func(s *fakeServer) { s.down = false })
		s = h.wait("a back", func(s Snapshot) bool { return role(s, "a") != RoleUnknown && role(s, "b") == RoleUnknown })
		require.Equal(t, RoleFenced, role(s, "a"))
		require.Empty(t, s.Primary)
		require.EqualValues(t, 2, s.MaxTimeline)
		require.Contains(t, h.logs.String(), "old timeline; it is fenced")
		for range 5 { // it stays that way
			time.Sleep(time.Second)
			require.Empty(t, h.settle().Primary)
		}
	})
}

// TestSameTimelineTie: two primaries on one timeline (two standbys
// promoted at once): the one in use stays; with none in use, none is used.
func TestSameTimelineTie(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("a", fakeServer{obs: primaryObs(2, 100)})
		f.set("b", fakeServer{obs: standbyObs(1, 100)})
		h := start(t, f, Config{Hosts: hosts("a", "b")})
		h.wait("a primary", func(s Snapshot) bool { return s.Primary == "a" })
		f.edit("b", func(s *fakeServer) { s.obs = primaryObs(2, 100) })
		s := h.wait("b claims", func(s Snapshot) bool { return role(s, "b") != RoleStandby })
		require.Equal(t, "a", s.Primary)
		require.Equal(t, RoleFenced, role(s, "b"))
		h.stop()

		f2 := newFake()
		f2.set("a", fakeServer{obs: primaryObs(2, 100)})
		f2.set("b", fakeServer{obs: primaryObs(2, 100)})
		h2 := start(t, f2, Config{Hosts: hosts("a", "b")})
		defer h2.stop()
		s = h2.settle()
		require.Empty(t, s.Primary)
		require.Equal(t, RoleFenced, role(s, "a"))
		require.Equal(t, RoleFenced, role(s, "b"))
		require.Contains(t, h2.logs.String(), "none was in use; none is used")
	})
}

// TestProbeTimeoutIsNotTheInterval: a short interval does not make a
// slow but healthy server unreachable. The probe timeout
// (health_check_timeout) defaults to DefaultProbeTimeout whatever the
// interval; one that takes longer than an explicit timeout fails. Before
// health_check_timeout the timeout was the interval, and on a loaded
// machine a 200 ms interval was shorter than connect plus SCRAM.
func TestProbeTimeoutIsNotTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{obs: primaryObs(1, 100), delay: time.Second})
		f.set("s", fakeServer{obs: standbyObs(1, 100), delay: 3 * time.Second})
		h := start(t, f, Config{Hosts: hosts("p", "s"), Interval: 200 * time.Millisecond})
		defer h.stop()
		time.Sleep(4 * time.Second) // virtual: both first probes have ended
		s := h.settle()
		require.Equal(t, "p", s.Primary)
		st, _ := s.Host("s")
		require.True(t, st.Reachable, "a standby answering in 3s with a 200ms interval: %v", st.Err)
		require.Equal(t, RoleStandby, st.Role)
	})
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{obs: primaryObs(1, 100), delay: time.Second})
		f.set("s", fakeServer{obs: standbyObs(1, 100), delay: 3 * time.Second})
		h := start(t, f, Config{Hosts: hosts("p", "s"), Interval: 200 * time.Millisecond, ProbeTimeout: 2 * time.Second})
		defer h.stop()
		time.Sleep(4 * time.Second) // virtual: both first probes have ended
		s := h.settle()
		require.Equal(t, "p", s.Primary)
		st, _ := s.Host("s")
		require.False(t, st.Reachable)
		require.ErrorIs(t, st.Err, context.DeadlineExceeded)
	})
}

// TestChangeSeenWithinOneInterval: a promotion done outside is reported
// through Changed within one probe interval.
func TestChangeSeenWithinOneInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("a", fakeServer{down: true})
		f.set("b", fakeServer{obs: standbyObs(1, 100)})
		h := start(t, f, Config{Hosts: hosts("a", "b"), Interval: 2 * time.Second})
		defer h.stop()
		s := h.settle()
		require.Empty(t, s.Primary)
		time.Sleep(700 * time.Millisecond) // between probes
		ch := h.m.Changed()
		f.edit("b", func(s *fakeServer) { s.obs = primaryObs(2, 100) })
		began := time.Now()
		<-ch
		require.LessOrEqual(t, time.Since(began), 2*time.Second)
		s2 := h.m.Snapshot()
		require.Equal(t, "b", s2.Primary)
		require.Greater(t, s2.Version, s.Version)
	})
}

// TestLag: idle primary, no lag; a standby that stops replaying while the
// primary writes lags by the age of the first write it missed; Standbys
// filters on it.
func TestLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{obs: primaryObs(1, 1000)})
		f.set("s1", fakeServer{obs: standbyObs(1, 1000)})
		f.set("s2", fakeServer{obs: standbyObs(1, 1000)})
		h := start(t, f, Config{Hosts: hosts("p", "s1", "s2"), MaxReplicaLag: 10 * time.Second})
		defer h.stop()
		h.settle()
		time.Sleep(30 * time.Second) // idle for a long time
		s := h.settle()
		for _, n := range []string{"s1", "s2"} {
			st, _ := s.Host(n)
			require.True(t, st.LagKnown)
			require.Zero(t, st.Lag, n)
		}

		// The primary writes every second; s1 keeps up, s2 stops replaying.
		v := h.m.Snapshot().Version
		for i := 1; i <= 20; i++ {
			lsn := LSN(1000 + 100*i)
			f.edit("p", func(s *fakeServer) { s.obs.FlushLSN = lsn })
			f.edit("s1", func(s *fakeServer) { s.obs.ReceiveLSN, s.obs.ReplayLSN = lsn, lsn })
			f.edit("s2", func(s *fakeServer) { s.obs.ReceiveLSN = lsn; s.obs.ReplayPaused = true })
			time.Sleep(time.Second)
		}
		s = h.settle()
		s1, _ := s.Host("s1")
		s2, _ := s.Host("s2")
		require.LessOrEqual(t, s1.Lag, time.Second, "keeping up: at most one interval")
		require.True(t, s2.ReplayPaused)
		require.GreaterOrEqual(t, s2.Lag, 19*time.Second)
		require.LessOrEqual(t, s2.Lag, 21*time.Second)
		require.EqualValues(t, 2000, s2.LagBytes)
		require.True(t, s2.Lagging)
		require.False(t, s1.Lagging)
		require.Equal(t, v+2, s.Version, "two changes: s2 paused, then lagging (lag figures alone are none)")
		var names []string
		for _, st := range s.Standbys(10 * time.Second) {
			names = append(names, st.Name)
		}
		require.Equal(t, []string{"s1"}, names)
		require.Len(t, s.Standbys(0), 2)

		// Resumed replay catches up: lag back to zero.
		f.edit("s2", func(s *fakeServer) { s.obs.ReplayLSN = 3000; s.obs.ReplayPaused = false })
		time.Sleep(time.Second)
		s2, _ = h.settle().Host("s2")
		require.Zero(t, s2.Lag)
		require.False(t, s2.Lagging)
	})
}

// TestSlowProbeAddsNoLag: a standby that keeps up exactly, probed slowly
// (its answer takes 3s, as on a loaded machine), is not reported lagging:
// its replay position is dated when its probe started, not when the answer
// arrived. Dated at the answer, it looked 3s behind, past a 1s
// max_replica_lag, and lost its read-only clients.
func TestSlowProbeAddsNoLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{obs: primaryObs(1, 1000)})
		f.set("s", fakeServer{obs: standbyObs(1, 1000), delay: 3 * time.Second})
		h := start(t, f, Config{Hosts: hosts("p", "s"), Interval: 500 * time.Millisecond, MaxReplicaLag: time.Second})
		defer h.stop()
		// The primary writes every 100ms; the standby replays each write at
		// once (the fake answers with what it had when the probe started).
		for i := 1; i <= 100; i++ {
			lsn := LSN(1000 + 100*i)
			f.edit("p", func(s *fakeServer) { s.obs.FlushLSN = lsn })
			f.edit("s", func(s *fakeServer) { s.obs.ReceiveLSN, s.obs.ReplayLSN = lsn, lsn })
			time.Sleep(100 * time.Millisecond)
			if i%10 == 0 {
				st, _ := h.settle().Host("s")
				require.False(t, st.Lagging, "after %d writes: a standby that keeps up, lag %v", i, st.Lag)
				require.LessOrEqual(t, st.Lag, 500*time.Millisecond, "after %d writes: at most one interval", i)
			}
		}
		st, _ := h.settle().Host("s")
		require.True(t, st.LagKnown)
		require.Equal(t, RoleStandby, st.Role)
	})
}

func TestLagUnknownWithoutPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("s1", fakeServer{obs: standbyObs(1, 1000)})
		h := start(t, f, Config{Hosts: hosts("p", "s1")})
		defer h.stop()
		s := h.settle()
		st, _ := s.Host("s1")
		require.False(t, st.LagKnown)
		require.Len(t, s.Standbys(time.Second), 1, "unknown lag qualifies")
	})
}

// TestAutoPromoteAfter: the primary goes silent; after exactly promote_after
// (checked at probe times) the standby with the most WAL is promoted,
// once, and becomes the writable primary.
func TestAutoPromoteAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("p", fakeServer{obs: primaryObs(1, 500)})
		f.set("s1", fakeServer{obs: standbyObs(1, 400)})
		f.set("s2", fakeServer{obs: Observation{InRecovery: true, Timeline: 1, ReceiveLSN: 500, ReplayLSN: 450}})
		f.set("s3", fakeServer{obs: standbyObs(1, 480)})
		var hookMu sync.Mutex
		var failovers []string
		var restored time.Duration
		var promotedHook []string
		h := start(t, f, Config{Hosts: hosts("p", "s1", "s2", "s3"), AutoPromote: &AutoPromote{After: 10 * time.Second},
			Hooks: Hooks{
				Failover: func(db, from, to string) {
					hookMu.Lock()
					defer hookMu.Unlock()
					failovers = append(failovers, db+":"+from+"->"+to)
				},
				PrimaryRestored: func(db, host string, without time.Duration) {
					hookMu.Lock()
					defer hookMu.Unlock()
					restored = without
				},
				Promoted: func(db, host string, auto bool, err error) {
					hookMu.Lock()
					defer hookMu.Unlock()
					promotedHook = append(promotedHook, host)
					require.True(t, auto)
					require.NoError(t, err)
				},
			}})
		defer h.stop()
		h.wait("p primary", func(s Snapshot) bool { return s.Primary == "p" })
		time.Sleep(3500 * time.Millisecond)

		f.edit("p", func(s *fakeServer) { s.down = true })
		s := h.wait("p down", func(s Snapshot) bool { return role(s, "p") == RoleUnknown })
		p, _ := s.Host("p")
		down := p.DownSince
		s = h.wait("s2 primary", func(s Snapshot) bool { return s.Primary == "s2" })
		prom := f.promoted()
		require.Len(t, prom, 1)
		require.Equal(t, "s2", prom[0].host, "received the most WAL")
		require.GreaterOrEqual(t, prom[0].at.Sub(down), 10*time.Second, "not before promote_after")
		require.LessOrEqual(t, prom[0].at.Sub(down), 11*time.Second, "within one interval after it")
		require.EqualValues(t, 2, s.MaxTimeline)
		require.Equal(t, 1, s.Failovers)
		time.Sleep(time.Minute)
		h.settle()
		require.Len(t, f.promoted(), 1, "promoted once")
		hookMu.Lock()
		require.Equal(t, []string{"appdb:p->s2"}, failovers)
		require.Equal(t, []string{"s2"}, promotedHook)
		require.GreaterOrEqual(t, restored, 10*time.Second)
		hookMu.Unlock()
		// The other standbys still follow the dead primary: timeline 1, so
		// they could never be promoted next.
		require.Equal(t, RoleStandby, role(h.m.Snapshot(), "s1"))
	})
}

// TestAutoPromoteNeverWhilePrimaryAnswers: a primary that answers, even
// only with an error (starting up after a crash), is never replaced; one
// whose probes time out is silent, and is.
func TestAutoPromoteNeverWhilePrimaryAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := primaryAndStandby()
		h := start(t, f, Config{Hosts: hosts("p", "s"), AutoPromote: &AutoPromote{After: 2 * time.Second}})
		defer h.stop()
		h.wait("p primary", func(s Snapshot) bool { return s.Primary == "p" })
		f.edit("p", func(s *fakeServer) { s.srvErr = true })
		time.Sleep(time.Minute)
		s := h.settle()
		require.Empty(t, s.Primary)
		p, _ := s.Host("p")
		require.False(t, p.Reachable)
		require.True(t, p.DownSince.IsZero(), "it answers")
		require.Empty(t, f.promoted())

		// A probe that times out is silence.
		f.edit("p", func(s *fakeServer) { s.srvErr, s.hang = false, true })
		s = h.wait("s promoted", func(s Snapshot) bool { return s.Primary == "s" })
		require.Len(t, f.promoted(), 1)
		p, _ = s.Host("p")
		require.ErrorIs(t, p.Err, context.DeadlineExceeded)
	})
}

// TestAutoPromoteSkipsOldTimeline: a standby still on a timeline older than
// the newest seen is never promoted, and a fenced old primary does not
// block promoting a current standby.
func TestAutoPromoteSkipsOldTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("new", fakeServer{obs: primaryObs(2, 900)})
		f.set("stale", fakeServer{obs: standbyObs(1, 950)})
		f.set("old", fakeServer{obs: primaryObs(1, 990)})
		h := start(t, f, Config{Hosts: hosts("old", "new", "stale"), AutoPromote: &AutoPromote{After: 2 * time.Second}})
		defer h.stop()
		h.wait("new primary", func(s Snapshot) bool { return s.Primary == "new" })
		f.edit("new", func(s *fakeServer) { s.down = true })
		time.Sleep(time.Minute)
		s := h.settle()
		require.Empty(t, s.Primary)
		require.Equal(t, RoleFenced, role(s, "old"))
		require.Empty(t, f.promoted(), "the only standby is on timeline 1 < 2")
		require.Contains(t, h.logs.String(), "no reachable standby on timeline 2")

		f.set("cur", fakeServer{obs: standbyObs(2, 900)})
		require.NoError(t, h.m.SetHosts(hosts("old", "new", "stale", "cur")))
		h.wait("cur promoted", func(s Snapshot) bool { return s.Primary == "cur" })
		require.Equal(t, "cur", f.promoted()[0].host)
		require.Equal(t, RoleFenced, role(h.m.Snapshot(), "old"))
	})
}

func TestAutoPromoteRetriesAfterFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := primaryAndStandby()
		f.promoteErr = errors.New("permission denied for function pg_promote")
		h := start(t, f, Config{Hosts: hosts("p", "s"), AutoPromote: &AutoPromote{After: 5 * time.Second}})
		defer h.stop()
		h.wait("p primary", func(s Snapshot) bool { return s.Primary == "p" })
		f.edit("p", func(s *fakeServer) { s.down = true })
		time.Sleep(12 * time.Second)
		h.settle()
		prom := f.promoted()
		require.Len(t, prom, 2, "one attempt, then another promote_after later")
		require.GreaterOrEqual(t, prom[1].at.Sub(prom[0].at), 5*time.Second)
		require.Contains(t, h.logs.String(), "promotion failed")
	})
}

func TestManualPromote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := primaryAndStandby()
		h := start(t, f, Config{Hosts: hosts("p", "s"), Interval: 10 * time.Second})
		defer h.stop()
		h.settle()
		ctx := context.Background()
		require.ErrorContains(t, h.m.Promote(ctx, "p"), "not a reachable standby")
		require.ErrorContains(t, h.m.Promote(ctx, "x"), "no host x")
		require.NoError(t, h.m.Promote(ctx, "s"))
		s := h.settle() // the host is probed at once, not 10s later
		require.Equal(t, "s", s.Primary)
		require.Equal(t, RoleFenced, role(s, "p"))
		require.Contains(t, h.logs.String(), "promoting a standby while the primary answers")
	})
}

func TestSetHosts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.set("a", fakeServer{obs: primaryObs(1, 500)})
		f.set("b", fakeServer{obs: standbyObs(1, 500)})
		f.set("c", fakeServer{obs: standbyObs(1, 500)})
		h := start(t, f, Config{Hosts: hosts("a", "b")})
		defer h.stop()
		s := h.settle()
		require.Len(t, s.Hosts, 2)
		seen := s.Hosts[1].LastSeen

		require.NoError(t, h.m.SetHosts(hosts("c", "b")))
		s = h.settle()
		require.Equal(t, []string{"c", "b"}, []string{s.Hosts[0].Name, s.Hosts[1].Name})
		require.Empty(t, s.Primary, "a is no longer a host")
		require.Equal(t, seen, s.Hosts[1].LastSeen, "b kept its state")
		require.Equal(t, RoleStandby, s.Hosts[0].Role, "c probed at once")

		require.ErrorContains(t, h.m.SetHosts(hosts("a", "a")), "twice")
		require.ErrorContains(t, h.m.SetHosts([]Host{{}}), "Name")
	})
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{})
	require.ErrorContains(t, err, "Prober")
	_, err = New(Config{Prober: newFake(), Hosts: hosts("a", "a")})
	require.Error(t, err)
}

func TestLSN(t *testing.T) {
	for _, s := range []string{"0/0", "0/3000148", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		l, err := ParseLSN(s)
		require.NoError(t, err)
		require.Equal(t, s, l.String())
	}
	l, _ := ParseLSN("1/0")
	require.EqualValues(t, 1<<32, l)
	for _, s := range []string{"", "0", "x/1", "1/", "100000000/0"} {
		_, err := ParseLSN(s)
		require.Error(t, err, s)
	}
}

func TestWALHistory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var w walHistory
	_, _, known := w.lag(0, t0)
	require.False(t, known)
	w.add(100, t0)
	w.add(100, t0.Add(time.Second)) // no movement: not a new sample
	w.add(200, t0.Add(2*time.Second))
	w.add(300, t0.Add(3*time.Second))
	require.Len(t, w.samples, 3)

	lag, bytes, known := w.lag(300, t0.Add(10*time.Second))
	require.True(t, known)
	require.Zero(t, lag)
	require.Zero(t, bytes)
	lag, bytes, _ = w.lag(150, t0.Add(10*time.Second))
	require.Equal(t, 8*time.Second, lag, "200 first seen at t0+2s")
	require.EqualValues(t, 150, bytes)
	// Samples after the standby's probe do not count against it.
	lag, bytes, _ = w.lag(150, t0.Add(2500*time.Millisecond))
	require.Equal(t, 500*time.Millisecond, lag)
	require.EqualValues(t, 50, bytes)
	lag, _, _ = w.lag(100, t0.Add(1500*time.Millisecond))
	require.Zero(t, lag)

	for i := range maxSamples + 10 {
		w.add(LSN(1000+i), t0.Add(time.Duration(10+i)*time.Second))
	}
	require.Len(t, w.samples, maxSamples)
	w.reset()
	_, _, known = w.lag(0, t0)
	require.False(t, known)
}
