package proxy

import (
	"sync"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/pool"
)

// dbGates holds one pool.Gate per database with
// pool.max_db_connections: the pools of all its users count their
// connections against it (PgBouncer's max_db_connections). A database's
// gate lives as long as the server, so that pools created later, and
// after a reload, join the same one.
//
// Alone, a gate's limit is max_db_connections (set again at reload).
// In a fleet (cluster: set) it is this instance's share of the
// database's budget, which only the fleet's budget (internal/cluster,
// wired by the daemon through DatabaseGate) sets: it starts at 0, so
// that nothing is opened before etcd gave this instance a share.
type dbGates struct {
	mu    sync.Mutex
	gates map[string]*pool.Gate
}

// initGates creates, in a fleet, the gates of the databases with a
// budget at start (limit 0 until the fleet's budget gives a share), so
// that every pool, those fillPools creates before the daemon starts the
// budget included, joins them. The set is fixed until a restart (a new
// value of a budget is the daemon's to hand to the fleet's budget).
func (s *Server) initGates(cfg *config.Config) {
	if !cfg.Cluster.Enabled() {
		return
	}
	for name, db := range cfg.Databases {
		if db.Pool.MaxDBConnections > 0 {
			s.DatabaseGate(name, db.Pool.MaxDBConnections)
		}
	}
}

// gateFor is db's gate: alone, created on first use when the database
// has max_db_connections; in a fleet, the one initGates created at
// start (nil for a database without a budget then).
func (s *Server) gateFor(db *config.Database) *pool.Gate {
	if s.state.Load().cfg.Cluster.Enabled() {
		s.gates.mu.Lock()
		defer s.gates.mu.Unlock()
		return s.gates.gates[db.Name]
	}
	if db.Pool.MaxDBConnections <= 0 {
		return nil
	}
	return s.DatabaseGate(db.Name, db.Pool.MaxDBConnections)
}

// DatabaseGate is the gate of database name, created if needed with
// the limit max_db_connections (0 in a fleet: the fleet's budget sets
// it). The daemon hands it to the fleet's budget.
func (s *Server) DatabaseGate(name string, maxDBConnections int) *pool.Gate {
	s.gates.mu.Lock()
	defer s.gates.mu.Unlock()
	if g := s.gates.gates[name]; g != nil {
		return g
	}
	limit := maxDBConnections
	if s.state.Load().cfg.Cluster.Enabled() {
		limit = 0
	}
	g := pool.NewGate(limit)
	if s.gates.gates == nil {
		s.gates.gates = map[string]*pool.Gate{}
	}
	s.gates.gates[name] = g
	return g
}

// reloadGates applies max_db_connections of cfg to an instance that is
// not in a fleet; a database whose limit became 0 keeps its gate with
// no practical limit until a restart (its pools cannot leave it).
func (s *Server) reloadGates(cfg *config.Config) {
	if cfg.Cluster.Enabled() {
		// The fleet's budget sets the limits; the daemon gives it the
		// new values. Only a budget set or removed waits for a restart.
		for name, db := range cfg.Databases {
			if old := s.gateFor(db); (old != nil) != (db.Pool.MaxDBConnections > 0) {
				s.log.Warn("databases.<db>.pool.max_db_connections set or removed; in a fleet that takes effect after a restart (a changed value applies at reload)",
					"database", name)
			}
		}
		return
	}
	s.gates.mu.Lock()
	gates := make(map[string]*pool.Gate, len(s.gates.gates))
	for n, g := range s.gates.gates {
		gates[n] = g
	}
	s.gates.mu.Unlock()
	for n, g := range gates {
		limit := 1 << 30 // unlimited from now on
		if db := cfg.Databases[n]; db != nil && db.Pool.MaxDBConnections > 0 {
			limit = db.Pool.MaxDBConnections
		}
		g.SetLimit(limit)
	}
}

// gateLimits is each gated database's limit in force (SHOW DATABASES'
// max_connections).
func (s *Server) gateLimits() map[string]int {
	s.gates.mu.Lock()
	defer s.gates.mu.Unlock()
	out := make(map[string]int, len(s.gates.gates))
	for n, g := range s.gates.gates {
		out[n] = g.Limit()
	}
	return out
}
