package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/metrics"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// dbTopology watches the servers of a database with more than one host:
// its Monitor (run by the Server's background group) says which one is the
// writable primary, and pools dial only that one.
type dbTopology struct {
	name string
	mon  *topology.Monitor
	// reads routes read-only sessions to standbys (readonly.go).
	reads readHosts
	// fleetManaged: the fleet decides failover (fleet_failover.go).
	fleetManaged bool
}

// topologyFor returns the monitor of db, starting it on first use; nil
// when db has a single host (then the host is the primary by definition).
func (s *Server) topologyFor(db *config.Database) *dbTopology {
	if len(db.Hosts) < 2 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.topos[db.Name]; t != nil {
		return t
	}
	cfg := s.state.Load().cfg
	u := cfg.User(db.Failover.User)
	if u == nil {
		return nil // config validation requires failover.user with several hosts
	}
	hosts := make([]topology.Host, 0, len(db.Hosts))
	byName := map[string]config.Host{}
	for _, hs := range db.Hosts {
		h, err := config.ParseHost(hs)
		if err != nil {
			continue
		}
		hosts = append(hosts, topology.Host{Name: h.Display, Network: h.Network, Address: h.Address})
		byName[h.Display] = h
	}
	dialDB := *db
	dialUser := *u
	prober := topology.NewSQLProber(topology.BackendDialer(func(h topology.Host) backend.Options {
		o := s.dialOptionsFor(&dialDB, &dialUser, byName[h.Name])
		o.DialTimeout = db.HealthCheckTimeout.D()
		return o
	}))
	mc := topology.Config{Database: db.Name, Hosts: hosts, Prober: prober, Interval: db.HealthCheckInterval.D(),
		ProbeTimeout: db.HealthCheckTimeout.D(), MaxReplicaLag: db.MaxReplicaLag.D(), Logger: s.log, Hooks: s.topologyHooks()}
	if db.Failover.AutoPromote {
		mc.AutoPromote = &topology.AutoPromote{After: db.Failover.PromoteAfter.D()}
	}
	mon, err := topology.New(mc)
	if err != nil {
		s.log.Error("cannot monitor the database's servers", "database", db.Name, "error", err)
		return nil
	}
	fleet := s.fleetForLocked(cfg, db)
	if fleet != nil {
		mon.SetFleet(fleet)
	}
	t := &dbTopology{name: db.Name, mon: mon, fleetManaged: fleet != nil}
	if s.topos == nil {
		s.topos = map[string]*dbTopology{}
	}
	s.topos[db.Name] = t
	if !s.closing {
		s.bgWG.Add(1)
		go func() {
			defer s.bgWG.Done()
			mon.Run(s.bgCtx)
			prober.Close()
		}()
	}
	return t
}

// primary reports the writable primary's address ("" when there is none).
func (t *dbTopology) primary() (config.Host, bool) {
	snap := t.mon.Snapshot()
	h, ok := snap.PrimaryHost()
	if !ok {
		return config.Host{}, false
	}
	return config.Host{Network: h.Network, Address: h.Address, Display: h.Name}, true
}

// isPrimary reports whether conn is connected to the current primary:
// a connection to any other server is never used for a client again.
func (t *dbTopology) isPrimary(conn *backend.Conn) bool {
	h, ok := t.primary()
	return ok && h.Network == conn.Network && h.Address == conn.Address
}

// errNoPrimary is returned when no writable primary appeared in time.
type errNoPrimary struct {
	database string
	waited   time.Duration
	last     error
}

func (e *errNoPrimary) Error() string {
	msg := fmt.Sprintf("no writable primary for database %q within pool.borrow_timeout (%s)", e.database, e.waited)
	if e.last != nil {
		msg += ": " + e.last.Error()
	}
	return msg
}

// dial opens a connection to the current primary. While there is none
// (the primary died and no standby has been promoted yet), or the one the
// monitor names fails, it waits for the monitor to see a change: new
// transactions queue through a failover instead of failing. It waits
// until ctx's deadline, the borrow's (see pool.Deadline), so that the
// pool wait, this wait and the dials together never exceed borrow_timeout;
// a dial with no deadline (pool maintenance) waits up to wait from now.
// Only connecting is retried here, never a client's statement. A login
// refused by the server is returned at once.
func (t *dbTopology) dial(ctx context.Context, mk func(config.Host) backend.Options, wait time.Duration) (*backend.Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(wait)
	}
	var last error
	for {
		changed := t.mon.Changed()
		if h, ok := t.primary(); ok {
			o := mk(h)
			o.Retries, o.Wait = 0, nil
			c, err := backend.Dial(ctx, o)
			if err == nil {
				return c, nil
			}
			var se *backend.ServerError
			if errors.As(err, &se) {
				return nil, err
			}
			if ctx.Err() == nil || last == nil {
				last = err // not an attempt the deadline cut short
			}
		}
		left := time.Until(deadline)
		if left <= 0 || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &errNoPrimary{database: t.name, waited: wait, last: last}
		}
		// Wake on the monitor's next change, and at least every second
		// (the primary it names may be reachable again).
		timer := time.NewTimer(min(left, time.Second))
		select {
		case <-ctx.Done():
			timer.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, &errNoPrimary{database: t.name, waited: wait, last: last}
			}
			return nil, ctx.Err()
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// topologyHooks log what the monitors see and count it in metrics. They
// must not block (they run on the monitor's goroutines).
func (s *Server) topologyHooks() topology.Hooks {
	return topology.Hooks{
		PrimaryChanged: func(database, from, to string) {
			s.log.Warn("writable primary changed", "database", database, "from", from, "to", to)
		},
		PrimaryRestored: func(database, host string, without time.Duration) {
			s.metrics.NoPrimaryTotal.WithLabelValues(database).Add(without.Seconds())
			s.log.Warn("writable primary available again", "database", database, "host", host, "without_primary", without.Round(time.Millisecond))
		},
		Promoted: func(database, host string, auto bool, err error) {
			if err != nil {
				s.log.Error("promoting a standby failed", "database", database, "host", host, "automatic", auto, "error", err)
				return
			}
			s.log.Warn("promoted a standby", "database", database, "host", host, "automatic", auto)
		},
	}
}

// topologyStats report every monitored database for metrics.
func (s *Server) topologyStats() ([]metrics.HostStat, []metrics.DatabaseStat) {
	s.mu.Lock()
	topos := make([]*dbTopology, 0, len(s.topos))
	for _, t := range s.topos {
		topos = append(topos, t)
	}
	s.mu.Unlock()
	var hosts []metrics.HostStat
	var dbs []metrics.DatabaseStat
	for _, t := range topos {
		snap := t.mon.Snapshot()
		ro := t.readHostConns()
		for _, h := range snap.Hosts {
			hosts = append(hosts, metrics.HostStat{Database: t.name, Host: h.Name, Role: h.Role.String(), Up: h.Reachable, LagSeconds: h.Lag.Seconds(),
				ReadOnlyActive: ro[h.Name][0], ReadOnlyIdle: ro[h.Name][1]})
		}
		d := metrics.DatabaseStat{Database: t.name, Failovers: snap.Failovers}
		if !snap.NoPrimarySince.IsZero() && snap.Primary == "" {
			d.NoPrimarySeconds = time.Since(snap.NoPrimarySince).Seconds()
		}
		dbs = append(dbs, d)
	}
	return hosts, dbs
}
