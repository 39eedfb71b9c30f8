package proxy

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/auth"
	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/metrics"
	"github.com/sluice-proxy/sluice/internal/notify"
	"github.com/sluice-proxy/sluice/internal/pool"
	"github.com/sluice-proxy/sluice/internal/token"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
)

// state is one loaded configuration with what is derived from it once
// (password credentials, so no login pays for key derivation, and the
// token public key, so no login reads a file).
type state struct {
	cfg   *config.Config
	creds map[string]*auth.Credentials
	// tokenKey verifies login tokens; nil when token.public_key_file is
	// unset (config validation then guarantees no method is token).
	tokenKey ed25519.PublicKey
	// auth caches auth_query results for this configuration.
	auth *authCache
}

// newState derives credentials for cfg, reusing prev's where the user's
// password did not change.
func newState(cfg *config.Config, prev *state) (*state, error) {
	st := &state{cfg: cfg, creds: make(map[string]*auth.Credentials, len(cfg.Users)), auth: &authCache{}}
	if path := cfg.Token.PublicKeyFile; path != "" {
		k, err := token.LoadPublicKey(path)
		if err != nil {
			return nil, fmt.Errorf("token.public_key_file: %w", err)
		}
		st.tokenKey = k
	}
	for i := range cfg.Users {
		u := &cfg.Users[i]
		if u.Password == "" {
			continue // trust or token user: no credentials to check against
		}
		if prev != nil {
			if old := prev.cfg.User(u.Name); old != nil && old.Password == u.Password {
				st.creds[u.Name] = prev.creds[u.Name]
				continue
			}
		}
		c, err := auth.NewCredentials(u.Name, u.Password)
		if err != nil {
			return nil, fmt.Errorf("users[%d].password: %w", i, err)
		}
		st.creds[u.Name] = c
	}
	return st, nil
}

type poolKey struct{ database, user string }

// poolEntry is one pool with the dial options it uses; options are
// swapped on reload so new connections follow the new config.
type poolEntry struct {
	key  poolKey
	pool *pool.Pool[*backend.Conn]
	opts atomic.Pointer[backend.Options]
	// db is the database's configuration (swapped on reload); topo its
	// monitor when it has several hosts (nil: the one host is dialled).
	db   atomic.Pointer[config.Database]
	topo *dbTopology
	// ro, for a standby pool of the read-only side, is the one host it
	// dials (see readonly.go); nil for the (database, user) pool.
	ro *readTarget
	// parsed: statements known to parse, for transaction pooling's
	// answerParseLocally.
	parsed txcore.ParsedSet
	// counters feed SHOW STATS (pool_counters.go).
	counters poolCounters
	// stats are the (database, user) pool's metrics, shared by its
	// standby pools; nil in unit tests (observes nothing).
	stats *metrics.PoolMetrics
	// hub is the pool's LISTEN fan-out (tx_notify.go), made at the first
	// LISTEN of a transaction-pooled client.
	hub atomic.Pointer[notify.Hub]
}

// dial opens a server connection for the pool and observes how long it
// took (see dialServer).
func (e *poolEntry) dial(ctx context.Context) (*backend.Conn, error) {
	start := time.Now()
	conn, err := e.dialServer(ctx)
	if err == nil {
		e.stats.Connected(time.Since(start))
	}
	return conn, err
}

// dialServer opens a server connection for the pool: to the configured host,
// or with several hosts to whichever the monitor says is the primary.
// When a client waits for it, ctx carries the client's borrow deadline
// (pool.Deadline): backend.Dial keeps retrying and dbTopology.dial keeps
// waiting for a primary until then, never longer.
func (e *poolEntry) dialServer(ctx context.Context) (*backend.Conn, error) {
	if e.ro != nil {
		return e.ro.dial(ctx)
	}
	base := *e.opts.Load()
	base.Startup = backend.StartupFrom(ctx) // the client's parameters, in the startup packet
	counted := base.Attempted
	base.Attempted = func(err error) { // a dial is rare: this closure costs nothing that matters
		if counted != nil {
			counted(err)
		}
		e.pool.NoteDialFailure(err) // a client queued meanwhile learns why, see pool.NoteDialFailure
	}
	if e.topo == nil {
		return backend.Dial(ctx, base)
	}
	db := e.db.Load()
	return e.topo.dial(ctx, func(h config.Host) backend.Options {
		o := base
		o.Network, o.Address, o.Display = h.Network, h.Address, h.Display
		o.TLS = backend.TLSOptionsFor(db.ServerTLS, h)
		return o
	}, db.Pool.BorrowTimeout.D())
}

// usable reports whether a connection may serve a client: with several
// hosts, only one to the current primary is; in a standby pool, only
// while its host still qualifies.
func (e *poolEntry) usable(conn *backend.Conn) bool {
	if e.ro != nil {
		return e.ro.qualifies()
	}
	return e.topo == nil || e.topo.isPrimary(conn)
}

// acquire takes a connection to the current primary from the pool; ones
// to any other server (an old primary, after a failover) are closed.
// The connection was opened with exactly the startup parameters ctx
// carries (backend.WithStartup; none when it carries none, as for
// auth_query's look-ups, which must never run under a client's
// search_path): settings affinity, see pool.Affinity. A full pool
// replaces an idle connection opened with other parameters rather than
// hand it out, so the client's RESET and DISCARD ALL return to its own
// startup values, as on a direct connection. Waiting for a connection,
// for a primary and dialling together take at most the pool's
// borrow_timeout.
func (e *poolEntry) acquire(ctx context.Context) (*backend.Conn, error) {
	var d pool.Deadline
	conn, err := e.acquireWithin(ctx, &d)
	e.borrowed(conn, &d)
	return conn, err
}

// borrowed observes the wait of a borrow bounded by d that gave conn (nil
// when it failed: its wait counts too) and stamps conn with the time it
// was borrowed, for lease.end. A borrow that took an idle connection
// reads the clock once here and lease.end once more: one pair per
// transaction in transaction mode.
func (e *poolEntry) borrowed(conn *backend.Conn, d *pool.Deadline) {
	now := time.Now()
	var wait time.Duration
	if since := d.Since(); !since.IsZero() {
		wait = now.Sub(since)
	}
	e.stats.BorrowWaited(wait)
	if conn != nil {
		conn.Borrowed = now
	}
}

// acquireWithin is acquire as part of a borrow bounded by d, which the
// caller may share with other acquisitions (readRoute tries several
// servers within one borrow_timeout).
func (e *poolEntry) acquireWithin(ctx context.Context, d *pool.Deadline) (*backend.Conn, error) {
	set := backend.StartupFrom(ctx)
	aff := pool.Affinity{Exact: true}
	if set != nil {
		aff.Key = set.Key
	}
	for {
		conn, err := e.pool.AcquireFor(ctx, d, aff)
		if err != nil || (e.usable(conn) && conn.OpenedWith(set)) {
			return conn, err
		}
		e.pool.Discard(conn) // an old primary's, or (a 64-bit hash collision) another set's
	}
}

func (s *Server) dialOptions(db *config.Database, u *config.User) backend.Options {
	return s.dialOptionsFor(db, u, db.PrimaryHost())
}

// dialOptionsFor are the options to reach host h of db as u.
func (s *Server) dialOptionsFor(db *config.Database, u *config.User, h config.Host) backend.Options {
	b := db.Backend
	return backend.Options{
		Network: h.Network, Address: h.Address, Display: h.Display,
		User: u.Name, Password: u.ServerPassword, Database: db.DBName,
		DialTimeout: b.DialTimeout.D(),
		KeepAlive:   b.TCPKeepalive.D(),
		TLS:         backend.TLSOptionsFor(db.ServerTLS, h),
		Retries:     b.EffectiveRetries(),
		Wait:        b.Wait,
		Logger:      s.log,
		Attempted: func(err error) {
			s.metrics.ConnectAttempts.Inc()
			if err != nil {
				s.metrics.ConnectFailures.Inc()
			}
		},
	}
}

func poolConfig(db *config.Database) pool.Config {
	return pool.Config{MinSize: db.Pool.MinSize, MaxSize: db.Pool.MaxSize, BorrowTimeout: db.Pool.BorrowTimeout.D(),
		IdleTimeout: db.Pool.IdleTimeout.D(), MaxLifetime: db.Pool.MaxLifetime.D(), HealthCheckPeriod: db.Pool.HealthCheckPeriod.D()}
}

// setPoolKeys makes the (db, u) pool log in with keys (recovered by an
// auth_query login) from now on, creating the pool if needed. The latest
// login's keys win, so after a password change new server connections
// use the new keys.
func (s *Server) setPoolKeys(db *config.Database, u *config.User, keys *auth.ServerKeys) {
	e := s.poolFor(db, u)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := e.opts.Load()
	if cur.Keys.Equal(keys) {
		return
	}
	opts := *cur
	opts.Keys = keys
	e.opts.Store(&opts)
}

// poolFor returns the pool for (db, user), creating it on first use.
func (s *Server) poolFor(db *config.Database, u *config.User) *poolEntry {
	key := poolKey{db.Name, u.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.pools[key]; e != nil {
		return e
	}
	s.mu.Unlock()
	topo := s.topologyFor(db) // takes s.mu
	s.mu.Lock()
	if e := s.pools[key]; e != nil {
		return e
	}
	e := &poolEntry{key: key, topo: topo, stats: s.metrics.Pool(key.database, key.user)}
	opts := s.dialOptions(db, u)
	e.opts.Store(&opts)
	e.db.Store(db)
	e.pool = pool.New(poolConfig(db), e.dial, (*backend.Conn).Alive)
	if g := s.gateFor(db); g != nil {
		e.pool.JoinGate(g) // before any use: max_db_connections counts all users' pools
	}
	s.holdNewPoolLocked(e) // PAUSE db holds a new user's pool too
	s.pools[key] = e
	if s.closing {
		return e
	}
	// One maintainer per pool: every health_check_period it replaces idle
	// connections that are stale or dead and tops up to min_size.
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		e.pool.Maintain(s.bgCtx, func(err error) {
			s.log.Warn("pool health check could not open a server connection",
				"database", key.database, "user", key.user, "error", err)
		})
	}()
	return e
}

// fillPools opens min_size connections for every configured user of
// every database, in the background, retrying with the database's backoff
// until it succeeds or sluice stops.
func (s *Server) fillPools() {
	cfg := s.state.Load().cfg
	for _, db := range cfg.Databases {
		if db.Pool.MinSize == 0 {
			continue
		}
		for i := range cfg.Users {
			if usesAuthQuery(cfg, &cfg.Users[i], cfg.Users[i].EffectiveAuthMethod(cfg.Auth.Method)) && cfg.Users[i].ServerPassword == "" {
				continue // no way to log in until the user has logged in once
			}
			e := s.poolFor(db, &cfg.Users[i])
			s.bgWG.Add(1)
			go func() {
				defer s.bgWG.Done()
				for {
					err := e.pool.EnsureMin(s.bgCtx)
					if err == nil || s.bgCtx.Err() != nil || errors.Is(err, pool.ErrClosed) {
						return
					}
					s.log.Warn("could not open min_size server connections; will retry",
						"database", e.key.database, "user", e.key.user, "error", err)
					t := time.NewTimer(db.Backend.Wait(1) + time.Second)
					select {
					case <-s.bgCtx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				}
			}()
		}
	}
}

// PoolStats reports every pool's state, sorted, for metrics.
func (s *Server) PoolStats() []metrics.PoolStat {
	s.mu.Lock()
	out := make([]metrics.PoolStat, 0, len(s.pools))
	for k, e := range s.pools {
		st := e.pool.Stats()
		db := e.db.Load()
		out = append(out, metrics.PoolStat{Database: k.database, User: k.user, Idle: st.Idle, Busy: st.Busy, Waiting: st.Waiting,
			MaxSize: db.Pool.MaxSize, Clients: e.stats.Clients(), WaitBeforeLogin: db.PoolMode == config.PoolSession,
			Recycled: st.Recycled, DeadRemoved: st.DeadRemoved, Timeouts: st.Timeouts, Replaced: st.Replaced})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Database != out[j].Database {
			return out[i].Database < out[j].Database
		}
		return out[i].User < out[j].User
	})
	return out
}

// Reload applies a new configuration without dropping sessions: users and
// passwords, pool sizes and server settings take effect for new sessions
// and new server connections; connections to a database whose server
// changed are retired (reload_servers.go). Listener addresses need a
// restart.
func (s *Server) Reload(cfg *config.Config) error {
	old := s.state.Load()
	if err := checkTLS(cfg, s.log); err != nil {
		return err
	}
	st, err := newState(cfg, old)
	if err != nil {
		return err
	}
	if cfg.Listen != old.cfg.Listen {
		s.log.Warn("listen settings changed; they take effect after a restart")
	}
	if !reflect.DeepEqual(cfg.Cluster, old.cfg.Cluster) {
		s.log.Warn("cluster settings changed; they take effect after a restart")
	}
	s.state.Store(st)
	s.limiter.Configure(cfg.Limits.AuthFailuresPerMinute, cfg.Limits.AuthFailureBurst)
	var moved []*poolEntry
	s.mu.Lock()
	for k, e := range s.pools {
		db := cfg.Databases[k.database]
		u := cfg.User(k.user)
		if u == nil && cfg.Auth.AuthUser != "" {
			u = &config.User{Name: k.user} // looked up with auth_query
		}
		if db == nil || u == nil {
			continue // sessions still using it finish; no new ones start
		}
		opts := s.dialOptions(db, u)
		if u.Password == "" && u.ServerPassword == "" && cfg.Auth.AuthUser != "" {
			opts.Keys = e.opts.Load().Keys // keep what the last auth_query login recovered
		}
		e.opts.Store(&opts)
		if prev := e.db.Swap(db); prev != nil && serverMoved(prev, db, e.topo == nil) {
			moved = append(moved, e)
		}
		e.pool.Resize(poolConfig(db))
		if g := s.gateFor(db); g != nil {
			e.pool.JoinGate(g) // max_db_connections set at this reload (a pool joins once)
		}
	}
	s.mu.Unlock()
	s.retireMoved(moved)
	s.resizeReadPools(cfg)
	s.reloadGates(cfg)
	s.fillPools()
	return nil
}

// Release, Discard, Usable, Parsed, Answered and Returned make a pool a
// txpool.Home: where a borrowed connection goes back when its lease ends.
func (e *poolEntry) Release(conn *backend.Conn)     { e.pool.Release(conn) }
func (e *poolEntry) Discard(conn *backend.Conn)     { e.pool.Discard(conn) }
func (e *poolEntry) Usable(conn *backend.Conn) bool { return e.usable(conn) }
func (e *poolEntry) Parsed() *txcore.ParsedSet      { return &e.parsed }

// Answered counts ReadyForQuery messages in the pool's metrics.
func (e *poolEntry) Answered(queries, transactions int) { e.stats.Answered(queries, transactions) }

// Returned observes, in transaction mode, how long the lease held the
// connection: one transaction (or a pin). A session's lease is its
// whole life, timed by the session histogram instead.
func (e *poolEntry) Returned(conn *backend.Conn) {
	if db := e.db.Load(); db != nil && db.PoolMode != config.PoolSession && !conn.Borrowed.IsZero() {
		e.stats.TransactionHeld(time.Since(conn.Borrowed))
	}
}
