package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultProbeTimeout bounds a probe when Config.ProbeTimeout is 0 (the
// default of health_check_timeout).
const DefaultProbeTimeout = 5 * time.Second

// Config configures a Monitor.
type Config struct {
	// Database names the database in logs and hooks.
	Database string
	Hosts    []Host
	Prober   Prober
	// Interval is health_check_interval, between the starts of two probes
	// of a host; 0 means 1s.
	Interval time.Duration
	// ProbeTimeout is health_check_timeout: it bounds one probe (dial,
	// login and query); 0 means DefaultProbeTimeout. It is independent of
	// Interval on purpose: a short interval (quick failover detection) must
	// not turn a slow but healthy server (a loaded machine, a SCRAM login
	// that takes a few hundred milliseconds) into an unreachable one. A
	// probe that outlives the interval delays the next one; ticks are not
	// queued up behind it.
	ProbeTimeout time.Duration
	// MaxReplicaLag is max_replica_lag: a standby lagging more is marked
	// Lagging, and crossing it either way is a material change. 0: never.
	MaxReplicaLag time.Duration
	// AutoPromote, if set, promotes a standby when the primary is gone.
	AutoPromote *AutoPromote
	Logger      *slog.Logger // nil: discard
	Hooks       Hooks
}

// Hooks let the owner export metrics without this package knowing about
// them. Each may be nil. They are called one at a time, in order, from the
// Monitor's goroutines (never with its lock held), and must not block.
type Hooks struct {
	// HostProbed is called after every probe with the host's new state
	// (per host role and health).
	HostProbed func(database string, h HostState)
	// PrimaryChanged is called when the writable primary changes; from or
	// to is "" for none.
	PrimaryChanged func(database, from, to string)
	// Failover is called when writes move from one host to another, whoever
	// promoted it (counts failovers).
	Failover func(database, from, to string)
	// PrimaryRestored is called when a writable primary is back after a
	// time without one (time without a writable primary).
	PrimaryRestored func(database, host string, without time.Duration)
	// Promoted is called after every promotion attempt by this Monitor.
	Promoted func(database, host string, auto bool, err error)
}

// Monitor keeps a database's topology current: it probes every host each
// Interval, derives roles and the writable primary, and optionally promotes
// a standby. Create it with New, start it with Run; every other method may be
// called at any time from any goroutine.
type Monitor struct {
	cfg Config
	log *slog.Logger

	mu             sync.Mutex
	hosts          []*hostRunner // configured order
	primary        string
	lastPrimary    string // the last host that was the writable primary
	noPrimarySince time.Time
	failovers      int
	maxTimeline    uint32
	maxTimelineOn  string
	history        walHistory
	version        uint64
	changed        chan struct{}
	conflict       string    // the split-brain situation last logged
	promoting      bool      // an automatic promotion is running
	promotedAt     time.Time // when the last automatic attempt ended
	waitingWhy     string    // the auto-promote policy's last reason, logged on change
	runCtx         context.Context
	running        bool
	wg             sync.WaitGroup

	// fleet, when set, has the authority over failover (fleet_run.go);
	// decision and decided are its decision as of the last updateLocked,
	// fleetEpoch the epoch the watch last saw, fleetConflict the fencing
	// situation last logged.
	fleet         Fleet
	decision      Decision
	decided       bool
	fleetEpoch    uint64
	fleetConflict string

	emitMu sync.Mutex // hook calls happen in order
}

type hostRunner struct {
	host Host
	st   HostState
	poke chan struct{} // probe now
	// readFrom is when the last successful probe started: the positions it
	// reports were read no earlier. A standby's lag is measured at this
	// moment, not when the answer arrived, so a slow probe does not add
	// its own duration to the lag.
	readFrom time.Time
	cancel   context.CancelFunc
	removed  bool
}

// New returns a Monitor for cfg.Hosts. Host names must be unique.
func New(cfg Config) (*Monitor, error) {
	if cfg.Prober == nil {
		return nil, errors.New("topology: Config.Prober is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		cfg:            cfg,
		log:            log.With("database", cfg.Database),
		changed:        make(chan struct{}),
		noPrimarySince: time.Now(),
	}
	if err := m.SetHosts(cfg.Hosts); err != nil {
		return nil, err
	}
	return m, nil
}

// Run probes until ctx ends, then waits for its goroutines (probes and
// promotions in flight end with ctx) and closes the Prober if it is an
// io.Closer. Run may be called once.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCtx != nil {
		m.mu.Unlock()
		return errors.New("topology: Monitor.Run called twice")
	}
	m.runCtx, m.running = ctx, true
	for _, h := range m.hosts {
		m.startLocked(h)
	}
	if m.fleet != nil {
		m.startFleetWatchLocked(m.fleet)
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.running = false
	m.mu.Unlock()
	m.wg.Wait()
	if c, ok := m.cfg.Prober.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (m *Monitor) startLocked(h *hostRunner) {
	ctx, cancel := context.WithCancel(m.runCtx)
	h.cancel = cancel
	m.wg.Add(1)
	go m.runHost(ctx, h)
}

// SetHosts replaces the host list (a reload). Hosts kept by Name keep their
// state; a host whose address changed counts as new. What the Monitor has
// learnt about timelines stays, so an old primary stays fenced.
func (m *Monitor) SetHosts(hosts []Host) error {
	seen := map[string]bool{}
	for _, h := range hosts {
		if h.Name == "" {
			return errors.New("topology: a host needs a Name")
		}
		if seen[h.Name] {
			return fmt.Errorf("topology: host %s listed twice", h.Name)
		}
		seen[h.Name] = true
	}
	m.mu.Lock()
	before := m.stateLocked()
	old := map[string]*hostRunner{}
	for _, h := range m.hosts {
		old[h.host.Name] = h
	}
	next := make([]*hostRunner, 0, len(hosts))
	for _, h := range hosts {
		if r := old[h.Name]; r != nil && r.host == h {
			delete(old, h.Name)
			next = append(next, r)
			continue
		}
		r := &hostRunner{host: h, st: HostState{Host: h}, poke: make(chan struct{}, 1)}
		if m.running {
			m.startLocked(r)
		}
		next = append(next, r)
	}
	var gone []Host
	for _, r := range old {
		r.removed = true
		if r.cancel != nil {
			r.cancel()
		}
		gone = append(gone, r.host)
	}
	m.hosts = next
	events := m.updateLocked(time.Now(), before)
	m.emit(events)
	if f, ok := m.cfg.Prober.(interface{ Forget(Host) }); ok {
		for _, h := range gone {
			f.Forget(h)
		}
	}
	return nil
}

func (m *Monitor) runHost(ctx context.Context, h *hostRunner) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		started := time.Now()
		pctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
		obs, err := m.cfg.Prober.Probe(pctx, h.host)
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.record(h, obs, err, started)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.poke:
		}
	}
}

// record stores the outcome of a probe that started at started and
// re-derives everything.
func (m *Monitor) record(h *hostRunner, obs Observation, err error, started time.Time) {
	now := time.Now()
	m.mu.Lock()
	if h.removed {
		m.mu.Unlock()
		return
	}
	before := m.stateLocked()
	s := &h.st
	wasReachable, first := s.Reachable, s.LastProbe.IsZero()
	s.LastProbe = now
	if err == nil {
		s.Reachable, s.Err, s.Observation, s.LastSeen, s.DownSince = true, nil, obs, now, time.Time{}
		h.readFrom = started
	} else {
		s.Reachable, s.Err = false, err
		if answered(err) {
			s.DownSince = time.Time{}
		} else if s.DownSince.IsZero() {
			s.DownSince = now
		}
	}
	switch {
	case (wasReachable || first) && !s.Reachable:
		m.log.Warn("server unreachable", "server", h.host.Name, "error", err)
	case !wasReachable && s.Reachable:
		m.log.Info("server reachable", "server", h.host.Name, "in_recovery", obs.InRecovery, "timeline", obs.Timeline)
	}
	events := m.updateLocked(now, before)
	if f := m.cfg.Hooks.HostProbed; f != nil {
		st := h.st
		events = append(events, func() { f(m.cfg.Database, st) })
	}
	m.emit(events)
}

// emit is called with m.mu held: it releases it and runs events in order.
func (m *Monitor) emit(events []func()) {
	m.emitMu.Lock()
	m.mu.Unlock()
	defer m.emitMu.Unlock()
	for _, e := range events {
		e()
	}
}

// state is what counts as a material change: a difference in it bumps
// Version and closes the Changed channel.
type state struct {
	hosts   []hostSig
	primary string
	// the fleet's decision, if any
	epoch uint64
	done  bool
}

type hostSig struct {
	name      string
	reachable bool
	role      Role
	timeline  uint32
	paused    bool
	lagging   bool
}

func (a state) equal(b state) bool {
	return a.primary == b.primary && a.epoch == b.epoch && a.done == b.done && slices.Equal(a.hosts, b.hosts)
}

func (m *Monitor) stateLocked() state {
	sig := make([]hostSig, len(m.hosts))
	for i, h := range m.hosts {
		sig[i] = hostSig{h.host.Name, h.st.Reachable, h.st.Role, h.st.Timeline, h.st.ReplayPaused, h.st.Lagging}
	}
	return state{hosts: sig, primary: m.primary, epoch: m.decision.Epoch, done: m.decision.Done}
}

// updateLocked re-derives roles, the primary, lag and the auto-promote
// decision from the hosts' states, notifies waiters if the result differs
// materially from before (taken before the caller changed anything), and
// returns the hooks to call.
func (m *Monitor) updateLocked(now time.Time, before state) []func() {
	var events []func()
	if m.fleet != nil {
		m.decision, m.decided = m.fleet.Decision()
	}

	// The newest timeline seen anywhere: a standby receiving timeline N
	// proves a primary on N exists, so any primary on an older one is stale.
	for _, h := range m.hosts {
		if h.st.Reachable && h.st.Timeline > m.maxTimeline {
			m.maxTimeline, m.maxTimelineOn = h.st.Timeline, h.host.Name
		}
	}
	var claims, stale []*hostRunner
	for _, h := range m.hosts {
		switch {
		case !h.st.Reachable:
			h.st.Role = RoleUnknown
		case h.st.InRecovery:
			h.st.Role = RoleStandby
		case h.st.Timeline < m.maxTimeline:
			h.st.Role = RoleFenced
			stale = append(stale, h)
		default:
			claims = append(claims, h)
		}
	}
	primary, decided := m.routeByDecisionLocked(claims)
	if !decided {
		primary = m.chooseLocked(claims, stale)
	}

	if primary != m.primary {
		from := m.primary
		m.primary = primary
		if f := m.cfg.Hooks.PrimaryChanged; f != nil {
			events = append(events, func() { f(m.cfg.Database, from, primary) })
		}
		if primary == "" {
			m.noPrimarySince = now
			m.log.Warn("no writable primary", "was", from)
		} else {
			// Zero when the primary moved straight from one server to
			// another (the new one was seen before the old one's loss).
			var without time.Duration
			if !m.noPrimarySince.IsZero() {
				without = now.Sub(m.noPrimarySince)
			}
			m.noPrimarySince = time.Time{}
			m.log.Info("writable primary", "server", primary, "timeline", m.hostLocked(primary).st.Timeline, "was", from)
			if last := m.lastPrimary; last != "" {
				if f := m.cfg.Hooks.PrimaryRestored; f != nil {
					events = append(events, func() { f(m.cfg.Database, primary, without) })
				}
				if last != primary {
					m.failovers++
					m.log.Warn("failover: writes move to another server", "from", last, "to", primary, "without_primary", without)
					if f := m.cfg.Hooks.Failover; f != nil {
						events = append(events, func() { f(m.cfg.Database, last, primary) })
					}
				}
			}
			if m.lastPrimary != primary {
				m.history.reset()
			}
			m.lastPrimary = primary
		}
	}
	// The primary's position is dated when its probe ended (it had reached
	// it by then), a standby's replay when its probe started (it had not
	// replayed more before): both err toward a smaller lag, so a slow
	// probe of either never makes a standby look staler than it is.
	if p := m.hostLocked(m.primary); p != nil {
		m.history.add(p.st.FlushLSN, p.st.LastSeen)
	}
	for _, h := range m.hosts {
		s := &h.st
		switch s.Role {
		case RoleStandby:
			s.Lag, s.LagBytes, s.LagKnown = m.history.lag(s.ReplayLSN, h.readFrom)
		case RolePrimary:
			s.Lag, s.LagBytes, s.LagKnown = 0, 0, true
		default:
			s.Lag, s.LagBytes, s.LagKnown = 0, 0, false
		}
		s.Lagging = s.LagKnown && m.cfg.MaxReplicaLag > 0 && s.Lag > m.cfg.MaxReplicaLag
	}
	events = append(events, m.autoPromoteLocked(now)...)

	if !m.stateLocked().equal(before) {
		m.version++
		close(m.changed)
		m.changed = make(chan struct{})
	}
	return events
}

// chooseLocked chooses the writable primary among claims as a single
// sluice does, without a fleet's decision, and sets their roles.
func (m *Monitor) chooseLocked(claims, stale []*hostRunner) string {
	primary, incumbent := "", false
	for _, h := range claims { // a tie: keep the one already in use, if any
		if h.host.Name == m.primary {
			primary, incumbent = m.primary, true
		}
	}
	if len(claims) == 1 {
		primary = claims[0].host.Name
	}
	if !incumbent && !m.allProbedLocked() {
		// Choosing before every host has answered (or failed) once could
		// pick an old primary whose successor is merely slower to answer.
		for _, h := range claims {
			h.st.Role = RoleUnknown
		}
		primary, claims = "", nil
	}
	for _, h := range claims {
		if h.host.Name == primary {
			h.st.Role = RolePrimary
		} else {
			h.st.Role = RoleFenced
		}
	}
	m.logConflictLocked(primary, claims, stale)
	return primary
}

// logConflictLocked logs, once per situation, every server that claims to
// be primary besides the one chosen.
func (m *Monitor) logConflictLocked(primary string, claims, stale []*hostRunner) {
	n := len(claims) + len(stale)
	if n == 0 || (n == 1 && len(stale) == 0) {
		m.conflict = ""
		return
	}
	var parts []string
	for _, h := range append(slices.Clone(claims), stale...) {
		what := "fenced"
		if h.host.Name == primary {
			what = "used"
		}
		parts = append(parts, fmt.Sprintf("%s (timeline %d, %s)", h.host.Name, h.st.Timeline, what))
	}
	desc := strings.Join(parts, ", ")
	if desc == m.conflict {
		return
	}
	m.conflict = desc
	switch {
	case len(claims) >= 2 && primary == "":
		m.log.Error("several servers claim to be primary on the newest timeline and none was in use; none is used",
			"servers", desc, "newest_timeline", m.maxTimeline)
	case n >= 2:
		m.log.Error("several servers claim to be primary; writes go only to the one on the newest timeline",
			"servers", desc, "newest_timeline", m.maxTimeline)
	default:
		m.log.Error("a server claims to be primary on an old timeline; it is fenced (never written to)",
			"servers", desc, "newest_timeline", m.maxTimeline, "seen_on", m.maxTimelineOn)
	}
}

func (m *Monitor) allProbedLocked() bool {
	for _, h := range m.hosts {
		if h.st.LastProbe.IsZero() {
			return false
		}
	}
	return true
}

func (m *Monitor) hostLocked(name string) *hostRunner {
	for _, h := range m.hosts {
		if h.host.Name == name {
			return h
		}
	}
	return nil
}

// autoPromoteLocked applies the policy and starts a promotion if it says
// so. One attempt at a time; after one ends, the next waits After again.
func (m *Monitor) autoPromoteLocked(now time.Time) []func() {
	if m.fleet != nil {
		return m.fleetLocked(now)
	}
	a := m.cfg.AutoPromote
	if a == nil || !m.running || m.promoting {
		return nil
	}
	if !m.promotedAt.IsZero() && now.Sub(m.promotedAt) < a.after() {
		return nil
	}
	d := a.decide(m.statesLocked(), m.primary, m.maxTimeline, now)
	if d.target == "" {
		if d.why != m.waitingWhy && m.primary == "" && m.allProbedLocked() {
			m.log.Info("automatic promotion: waiting", "reason", d.why)
		}
		m.waitingWhy = d.why
		return nil
	}
	m.waitingWhy = ""
	h := m.hostLocked(d.target)
	m.promoting = true
	m.log.Warn("automatic promotion", "server", d.target, "reason", d.why)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.runCtx, a.timeout())
		err := m.cfg.Prober.Promote(ctx, h.host)
		cancel()
		m.mu.Lock()
		m.promoting, m.promotedAt = false, time.Now()
		m.mu.Unlock()
		m.promoted(h, true, err)
	}()
	return nil
}

// promoted logs a promotion attempt, calls the hook and then probes the
// host at once so that the snapshot catches up.
func (m *Monitor) promoted(h *hostRunner, auto bool, err error) {
	if err != nil {
		m.log.Error("promotion failed", "server", h.host.Name, "automatic", auto, "error", err)
	} else {
		m.log.Warn("promoted", "server", h.host.Name, "automatic", auto)
	}
	if f := m.cfg.Hooks.Promoted; f != nil {
		m.emitMu.Lock()
		f(m.cfg.Database, h.host.Name, auto, err)
		m.emitMu.Unlock()
	}
	select {
	case h.poke <- struct{}{}:
	default:
	}
}

// Promote promotes the standby named host (pg_promote) and waits until it
// has left recovery or ctx ends. It refuses a host the last probe did not
// find to be a reachable standby. It does not check that the primary is
// down: promoting while it is up is a switchover, and the old primary is
// fenced as soon as the new timeline is seen.
func (m *Monitor) Promote(ctx context.Context, host string) error {
	m.mu.Lock()
	h := m.hostLocked(host)
	if h == nil {
		m.mu.Unlock()
		return fmt.Errorf("topology: no host %s", host)
	}
	if !h.st.Reachable || h.st.Role != RoleStandby {
		st := h.st
		m.mu.Unlock()
		return fmt.Errorf("topology: %s is not a reachable standby (role %s, reachable %v)", host, st.Role, st.Reachable)
	}
	if m.promoting {
		m.mu.Unlock()
		return errors.New("topology: a promotion is already running for this database")
	}
	if m.primary != "" {
		m.log.Warn("promoting a standby while the primary answers; the old primary will be fenced", "server", host, "primary", m.primary)
	}
	// Holding promoting keeps the automatic loop out while this runs: in
	// a fleet it would otherwise see this promotion's intent, not done
	// yet, and promote the same server a second time.
	f := m.fleet
	m.promoting = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.promoting = false
		m.mu.Unlock()
	}()
	if f != nil {
		return m.promoteThroughFleet(ctx, f, host)
	}
	err := m.cfg.Prober.Promote(ctx, h.host)
	m.promoted(h, false, err)
	return err
}

// Snapshot returns the current view.
func (m *Monitor) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Snapshot{
		Version:        m.version,
		Hosts:          m.statesLocked(),
		Primary:        m.primary,
		NoPrimarySince: m.noPrimarySince,
		Failovers:      m.failovers,
		MaxTimeline:    m.maxTimeline,
	}
}

func (m *Monitor) statesLocked() []HostState {
	out := make([]HostState, len(m.hosts))
	for i, h := range m.hosts {
		out[i] = h.st
	}
	return out
}

// Changed returns a channel that is closed at the next material change
// (see Snapshot.Version). Take it before reading the snapshot it guards:
//
//	for {
//		ch := m.Changed()
//		use(m.Snapshot())
//		<-ch
//	}
//
// A change is seen within one probe interval of the server changing. Lag
// figures alone do not count as changes; a standby crossing MaxReplicaLag
// does.
func (m *Monitor) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Wait returns the first snapshot for which cond is true, checking now and
// after every change, or ctx's error.
func (m *Monitor) Wait(ctx context.Context, cond func(Snapshot) bool) (Snapshot, error) {
	for {
		ch := m.Changed()
		s := m.Snapshot()
		if cond(s) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-ch:
		}
	}
}
