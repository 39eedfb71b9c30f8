package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/pool"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Read-only routing. A session that arrives on listen.read_only_address,
// or asks target_session_attrs=read-only|standby|prefer-standby in its
// startup parameters, is served by the database's healthy standbys: per
// session in session mode, per transaction (each attach) in transaction
// mode. A standby qualifies while the topology monitor sees it reachable,
// in recovery and not Lagging (replay more than max_replica_lag behind);
// of those, the one whose server connections (all users) are busiest
// least gets the work, ties taken in turn. When none qualifies the
// session falls back to the primary or is refused, per its mode (see
// readMode). Each (database, user, standby) has a pool of its own
// (min_size 0, the database's max_size), created with the first read-only
// session of that user; its connections are used only while their server
// qualifies.

// SQLSTATEs for sessions sluice cannot place.
const (
	// codeCannotConnectNow (cannot_connect_now) is what PostgreSQL answers
	// a login it cannot take yet ("the database system is starting up"):
	// drivers with several hosts try the next one, pools retry later.
	codeCannotConnectNow = "57P03"
	// codeRejectedConnection (sqlserver_rejected_establishment_of_sqlconnection):
	// the client asked for something this listener never serves.
	codeRejectedConnection = "08004"
)

// readMode says where a session's work may run.
type readMode uint8

const (
	// routePrimary: the writable primary (listen.address, and
	// target_session_attrs any, read-write or primary).
	routePrimary readMode = iota
	// routeReadOnly: a qualifying standby; when none, the primary if
	// read_only_fallback is primary, else refused (57P03). The session is
	// read-only by default (default_transaction_read_only=on, also on the
	// primary), which is libpq's read-only. listen.read_only_address and
	// target_session_attrs=read-only.
	routeReadOnly
	// routeStandby: a qualifying standby or nothing (57P03), whatever
	// read_only_fallback says (target_session_attrs=standby).
	routeStandby
	// routePreferStandby: a qualifying standby, else the primary, whatever
	// read_only_fallback says (target_session_attrs=prefer-standby).
	routePreferStandby
)

// routeError refuses a session that cannot be placed; the client gets code.
type routeError struct{ code, msg string }

func (e *routeError) Error() string { return e.msg }

// takeTargetSessionAttrs removes target_session_attrs from the startup
// settings (PostgreSQL has no such setting and would refuse the login)
// and returns its last value. It arrives as a startup parameter of its
// own or as "-c target_session_attrs=..." in options; libpq and pgx never
// send their own target_session_attrs (they check the server after
// connecting), so those clients set it through options (PGOPTIONS).
func takeTargetSessionAttrs(settings []frontend.Param) (string, []frontend.Param) {
	target, out := "", settings[:0:0]
	found := false
	for _, p := range settings {
		if strings.EqualFold(p.Name, "target_session_attrs") {
			target, found = p.Value, true
			continue
		}
		out = append(out, p)
	}
	if !found {
		return "", settings
	}
	return target, out
}

// readModeFor decides a session's mode from its listener and the
// target_session_attrs it asked for. Sessions on the read-only listener
// are read-only by default whatever they ask; read-write and primary are
// refused there.
func readModeFor(roListener bool, target string) (mode readMode, readOnlyDefault bool, err error) {
	switch strings.ToLower(target) {
	case "", "any":
		if roListener {
			return routeReadOnly, true, nil
		}
		return routePrimary, false, nil
	case "read-only":
		return routeReadOnly, true, nil
	case "standby":
		return routeStandby, roListener, nil
	case "prefer-standby":
		return routePreferStandby, roListener, nil
	case "read-write", "primary":
		if roListener {
			return 0, false, &routeError{codeRejectedConnection, fmt.Sprintf(
				"target_session_attrs=%s asks for a writable session, which the read-only listener (listen.read_only_address) never serves; connect to listen.address", target)}
		}
		return routePrimary, false, nil
	default:
		return 0, false, &routeError{"22023", fmt.Sprintf("invalid value for target_session_attrs: %q (any, read-write, read-only, primary, standby or prefer-standby)", target)}
	}
}

// routeFor decides where the session's work goes: nil for the primary as
// usual, else a route to standbys. It returns the settings to apply
// (without target_session_attrs; with default_transaction_read_only=on
// first for a read-only session, so a client's own value still wins).
// false: the client was refused.
func (ss *session) routeFor(db *config.Database, u *config.User, settings []frontend.Param) (*readRoute, []frontend.Param, bool) {
	target, settings := takeTargetSessionAttrs(settings)
	mode, roDefault, err := readModeFor(ss.readOnly, target)
	if err != nil {
		var re *routeError
		errors.As(err, &re)
		ss.fail(re.code, re.msg, "user", u.Name, "database", db.Name)
		return nil, nil, false
	}
	if mode == routePrimary {
		return nil, settings, true
	}
	if roDefault {
		settings = append([]frontend.Param{{Name: "default_transaction_read_only", Value: "on"}}, settings...)
	}
	s := ss.srv
	r := &readRoute{mode: mode, db: db, primary: s.poolFor(db, u), log: s.log}
	switch mode {
	case routeReadOnly:
		r.fallback = db.ReadOnlyFallback != "refuse"
	case routePreferStandby:
		r.fallback = true
	}
	if t := s.topologyFor(db); t != nil {
		r.topo = t
		r.set = s.readSetFor(t, db, u, r.primary)
	}
	return r, settings, true
}

// readRoute is one session's way to its servers when it reads from
// standbys.
type readRoute struct {
	mode     readMode
	fallback bool // the primary may serve when no standby qualifies
	db       *config.Database
	primary  *poolEntry // the (database, user) pool
	topo     *dbTopology
	set      *readSet // nil when the database has one host (no standbys known)
	log      *slog.Logger
}

// acquire takes a server connection for one session (session mode) or
// transaction (transaction mode) and returns the pool it came from: the
// least busy qualifying standby, trying the others when one cannot be
// reached, then the primary if the mode allows. It allocates nothing on
// the way to a healthy standby.
func (r *readRoute) acquire(ctx context.Context) (*poolEntry, *backend.Conn, error) {
	var dl pool.Deadline // one borrow_timeout for every server tried
	e, conn, err := r.acquireWithin(ctx, &dl)
	e.borrowed(conn, &dl)
	return e, conn, err
}

// acquireWithin is acquire within the one borrow dl.
func (r *readRoute) acquireWithin(ctx context.Context, dl *pool.Deadline) (*poolEntry, *backend.Conn, error) {
	if r.topo != nil {
		rh := &r.topo.reads
		v := rh.view(r.topo)
		var tried uint64
		var last error
		for range len(v.ok) {
			i := r.choose(v, tried)
			if i < 0 {
				break
			}
			e := r.set.hosts[i]
			conn, err := e.acquireWithin(ctx, dl)
			if err == nil {
				return e, conn, nil
			}
			if ctx.Err() != nil || errors.Is(err, pool.ErrExhausted) || errors.Is(err, pool.ErrClosed) {
				return e, nil, err
			}
			r.log.Warn("standby refused a read-only connection; trying another server", "database", r.db.Name, "host", e.ro.name, "error", err)
			tried |= 1 << (i & 63)
			last = err
		}
		if !r.fallback {
			return r.primary, nil, r.refusal(last)
		}
	}
	if !r.fallback {
		return r.primary, nil, r.refusal(nil)
	}
	conn, err := r.primary.acquireWithin(ctx, dl)
	return r.primary, conn, err
}

// refusal is the error for a session no standby can take; last is the
// last standby's error, if one was tried.
func (r *readRoute) refusal(last error) error {
	why := "read_only_fallback is refuse"
	if r.mode == routeStandby {
		why = "the client asked target_session_attrs=standby"
	}
	if r.topo == nil {
		return &routeError{codeCannotConnectNow, fmt.Sprintf("database %q has a single server, so no standby can take a read-only session, and %s", r.db.Name, why)}
	}
	msg := fmt.Sprintf("no standby of database %q can take a read-only session now (each is unreachable, not in recovery, or more than max_replica_lag = %s behind), and %s",
		r.db.Name, r.db.MaxReplicaLag.D(), why)
	if last != nil {
		msg += "; last error: " + last.Error()
	}
	return &routeError{codeCannotConnectNow, msg}
}

// choose returns the index of the qualifying standby, not in tried, whose
// pools have the fewest busy or dialling connections over all users;
// ties go to each in turn. -1: none.
func (r *readRoute) choose(v *readView, tried uint64) int {
	rh := &r.topo.reads
	sets := *rh.sets.Load()
	best, least, ties := -1, 0, 0
	for i := range v.ok {
		if !r.candidate(v, tried, i) {
			continue
		}
		switch load := hostLoad(sets, i); {
		case best < 0 || load < least:
			best, least, ties = i, load, 1
		case load == least:
			ties++
		}
	}
	if ties < 2 {
		return best
	}
	pick := int(rh.turn.Add(1) % uint32(ties))
	for i := range v.ok {
		if r.candidate(v, tried, i) && hostLoad(sets, i) == least {
			if pick == 0 {
				return i
			}
			pick--
		}
	}
	return best // the loads moved since the first pass
}

// candidate reports whether host i qualifies and was not tried yet.
func (r *readRoute) candidate(v *readView, tried uint64, i int) bool {
	return v.ok[i] && tried&(1<<(i&63)) == 0 && i < len(r.set.hosts) && r.set.hosts[i].ro.name == v.names[i]
}

// hostLoad counts the busy and dialling connections of every user's pool
// on host i.
func hostLoad(sets []*readSet, i int) int {
	load := 0
	for _, rs := range sets {
		if i < len(rs.hosts) {
			st := rs.hosts[i].pool.Stats()
			load += st.Busy + st.Dialing
		}
	}
	return load
}

// readHosts is a database's read-only side: which hosts qualify now, and
// the per-standby pools of every user.
type readHosts struct {
	cur  atomic.Pointer[readView]
	turn atomic.Uint32 // spreads ties between equally busy standbys
	// sets lists every user's readSet (copy on write), for counting a
	// host's connections without a lock.
	sets atomic.Pointer[[]*readSet]

	mu     sync.Mutex
	byUser map[string]*readSet // guarded by mu
}

// readView is which hosts qualify for read-only work, per the monitor's
// snapshot taken just after changed was current; index = the monitor's
// host order.
type readView struct {
	changed <-chan struct{}
	names   []string
	ok      []bool
}

// view returns the current view, rebuilding it (the only allocation) when
// the monitor has changed since it was built.
func (rh *readHosts) view(t *dbTopology) *readView {
	if v := rh.cur.Load(); v != nil {
		select {
		case <-v.changed:
		default:
			return v
		}
	}
	ch := t.mon.Changed()
	snap := t.mon.Snapshot()
	v := &readView{changed: ch, names: make([]string, len(snap.Hosts)), ok: make([]bool, len(snap.Hosts))}
	for i, h := range snap.Hosts {
		v.names[i] = h.Name
		v.ok[i] = qualifies(h)
	}
	rh.cur.Store(v)
	return v
}

// qualifies reports whether a host may serve read-only work.
func qualifies(h topology.HostState) bool {
	return h.Reachable && h.Role == topology.RoleStandby && !h.Lagging
}

// readSet is one user's pools for a database with several hosts: the
// primary's and one per host (used only while that host is a qualifying
// standby).
type readSet struct {
	primary *poolEntry
	hosts   []*poolEntry // by the monitor's host index
}

// readTarget makes a poolEntry dial one host of a database: no primary
// logic, no retries (another standby, or the primary, is tried instead).
type readTarget struct {
	topo    *dbTopology
	idx     int
	name    string
	host    config.Host
	primary *poolEntry // options (and auth_query keys) come from the user's primary pool
}

// errNotQualified refuses to dial a host that no longer qualifies.
type errNotQualified struct{ host string }

func (e *errNotQualified) Error() string {
	return fmt.Sprintf("server %s is no longer a usable standby (unreachable, not in recovery, or behind max_replica_lag)", e.host)
}

func (r *readTarget) qualifies() bool {
	v := r.topo.reads.view(r.topo)
	return r.idx < len(v.ok) && v.ok[r.idx] && v.names[r.idx] == r.name
}

func (r *readTarget) dial(ctx context.Context) (*backend.Conn, error) {
	if !r.qualifies() {
		return nil, &errNotQualified{r.name}
	}
	db := r.primary.db.Load()
	o := *r.primary.opts.Load()
	o.Startup = backend.StartupFrom(ctx)
	o.Network, o.Address, o.Display = r.host.Network, r.host.Address, r.host.Display
	o.TLS = backend.TLSOptionsFor(db.ServerTLS, r.host)
	o.Retries, o.Wait = 0, nil
	return backend.Dial(ctx, o)
}

// readPoolConfig is a standby pool's configuration: the database's, but
// opening nothing in advance.
func readPoolConfig(db *config.Database) pool.Config {
	c := poolConfig(db)
	c.MinSize = 0
	return c
}

// readSetFor returns u's pools on every host of t's database, creating
// them (empty) on first use.
func (s *Server) readSetFor(t *dbTopology, db *config.Database, u *config.User, primary *poolEntry) *readSet {
	rh := &t.reads
	rh.mu.Lock()
	if rs := rh.byUser[u.Name]; rs != nil {
		rh.mu.Unlock()
		return rs
	}
	snap := t.mon.Snapshot()
	rs := &readSet{primary: primary, hosts: make([]*poolEntry, len(snap.Hosts))}
	for i, h := range snap.Hosts {
		e := &poolEntry{key: primary.key, stats: primary.stats, ro: &readTarget{topo: t, idx: i, name: h.Name,
			host: config.Host{Network: h.Network, Address: h.Address, Display: h.Name}, primary: primary}}
		e.opts.Store(primary.opts.Load())
		e.db.Store(primary.db.Load())
		e.pool = pool.New(readPoolConfig(db), e.dial, (*backend.Conn).Alive)
		rs.hosts[i] = e
	}
	if rh.byUser == nil {
		rh.byUser = map[string]*readSet{}
	}
	rh.byUser[u.Name] = rs
	var sets []*readSet
	if old := rh.sets.Load(); old != nil {
		sets = append(sets, *old...)
	}
	sets = append(sets, rs)
	rh.sets.Store(&sets)
	rh.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range rs.hosts {
		s.holdNewPoolLocked(e) // PAUSE db holds its standby pools too
	}
	if s.closing {
		return rs
	}
	for _, e := range rs.hosts {
		s.bgWG.Add(1)
		go func() {
			defer s.bgWG.Done()
			e.pool.Maintain(s.bgCtx, func(err error) {
				s.log.Debug("standby pool health check could not open a server connection",
					"database", db.Name, "user", u.Name, "host", e.ro.name, "error", err)
			})
		}()
	}
	return rs
}

// all returns every standby pool of the database.
func (rh *readHosts) all() []*poolEntry {
	p := rh.sets.Load()
	if p == nil {
		return nil
	}
	var out []*poolEntry
	for _, rs := range *p {
		out = append(out, rs.hosts...)
	}
	return out
}

// readPools returns every standby pool of every database.
func (s *Server) readPools() []*poolEntry {
	s.mu.Lock()
	topos := make([]*dbTopology, 0, len(s.topos))
	for _, t := range s.topos {
		topos = append(topos, t)
	}
	s.mu.Unlock()
	var out []*poolEntry
	for _, t := range topos {
		out = append(out, t.reads.all()...)
	}
	return out
}

// resizeReadPools applies a reloaded configuration's pool settings to the
// standby pools (their dial options follow the primary pool's).
func (s *Server) resizeReadPools(cfg *config.Config) {
	for _, e := range s.readPools() {
		db := cfg.Databases[e.key.database]
		if db == nil {
			continue
		}
		e.db.Store(db)
		e.pool.Resize(readPoolConfig(db))
	}
}

// readHostConns counts the server connections the standby pools hold on
// each host, for metrics.
func (t *dbTopology) readHostConns() map[string][2]int {
	out := map[string][2]int{}
	for _, e := range t.reads.all() {
		st := e.pool.Stats()
		c := out[e.ro.name]
		c[0] += st.Busy
		c[1] += st.Idle
		out[e.ro.name] = c
	}
	return out
}

// ReadOnlyAddr is the read-only listener's address (nil without one).
func (s *Server) ReadOnlyAddr() net.Addr {
	if s.roListener == nil {
		return nil
	}
	return s.roListener.Addr()
}
