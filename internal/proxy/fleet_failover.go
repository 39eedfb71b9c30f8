package proxy

import (
	"context"
	"errors"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// FailoverFleet gives the fleet's authority over one database's failover
// (the daemon's adapter of cluster.Election).
type FailoverFleet func(database string) topology.Fleet

// SetFailoverFleet puts failover of every database with
// failover.auto_promote under the fleet's elections (cluster: one
// promoter per database, writes only to the primary named in etcd).
// Monitors started before, and those started later, get theirs from f.
func (s *Server) SetFailoverFleet(f FailoverFleet) {
	s.mu.Lock()
	s.failoverFleet = f
	var mons []*topology.Monitor
	var names []string
	for name, t := range s.topos {
		if t.fleetManaged {
			mons, names = append(mons, t.mon), append(names, name)
		}
	}
	s.mu.Unlock()
	for i, m := range mons {
		m.SetFleet(f(names[i]))
	}
}

// fleetForLocked is the Fleet a new monitor of db starts with: nil for a
// single sluice (or without auto_promote: failover is then the
// operator's, as for a single sluice), the fleet's when it is known, and
// until then one that never lets this instance promote, so that no
// decision is taken alone between the start of the proxy and that of the
// membership.
func (s *Server) fleetForLocked(cfg *config.Config, db *config.Database) topology.Fleet {
	if !cfg.Cluster.Enabled() || !db.Failover.AutoPromote {
		return nil
	}
	if s.failoverFleet != nil {
		return s.failoverFleet(db.Name)
	}
	return notJoined{}
}

// notJoined is the Fleet of an instance that has not joined yet.
type notJoined struct{}

var errNotJoined = errors.New("not connected to the fleet yet")

func (notJoined) Decision() (topology.Decision, bool) { return topology.Decision{}, false }
func (notJoined) Changed() <-chan struct{}            { return nil }
func (notJoined) Leading() bool                       { return false }
func (notJoined) Available() (bool, string)           { return false, errNotJoined.Error() }
func (notJoined) Write(context.Context, topology.Decision) error {
	return errNotJoined
}
