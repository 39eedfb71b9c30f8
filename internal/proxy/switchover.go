package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Switchover is a planned, lossless promotion of db's standby host (""
// picks the most caught-up reachable standby):
//
//  1. hold db's new transactions and wait until every connection to the
//     primary is released (PAUSE of the primary's pools; read-only
//     sessions on standbys go on);
//  2. read the primary's WAL position (pg_current_wal_lsn()): nothing
//     more is written through sluice;
//  3. wait until the standby has replayed up to it;
//  4. promote it (pg_promote, through the topology monitor, which fences
//     the old primary as soon as it sees the new timeline: it is never
//     used as primary again unless an operator says so);
//  5. wait until the monitor names the standby the primary, retire the
//     pools' connections to the old one, and resume.
//
// Clients see a pause, not an error. If a step before the promotion fails
// (ctx ends, the standby cannot be reached), sluice resumes on the old
// primary and returns the error: nothing was lost. ctx bounds the whole
// switchover; in session mode step 1 waits for the sessions to end, as
// PAUSE does. The connections to the servers are the failover user's.
func (s *Server) Switchover(ctx context.Context, db, host string) error {
	if db == "" {
		return errors.New("a database is required")
	}
	if err := s.checkDatabase(db); err != nil {
		return err
	}
	cfg := s.state.Load().cfg
	dbc := cfg.Databases[db]
	t := s.topologyFor(dbc)
	if t == nil {
		return fmt.Errorf("database %s has a single host: SWITCHOVER needs a standby to promote", db)
	}
	u := cfg.User(dbc.Failover.User)
	if u == nil {
		return fmt.Errorf("database %s: failover.user %q is not configured", db, dbc.Failover.User)
	}
	snap := t.mon.Snapshot()
	primary, ok := snap.PrimaryHost()
	if !ok {
		return fmt.Errorf("database %s has no writable primary now: nothing to switch over from", db)
	}
	target, err := switchoverTarget(snap, host)
	if err != nil {
		return fmt.Errorf("database %s: %w", db, err)
	}
	if err := t.mon.FleetRefusal(); err != nil {
		return fmt.Errorf("database %s: %w", db, err) // before pausing anything
	}
	dial := func(h topology.Host) (*backend.Conn, error) {
		o := s.dialOptionsFor(dbc, u, config.Host{Network: h.Network, Address: h.Address, Display: h.Name})
		o.Retries, o.Wait = 0, nil
		return backend.Dial(ctx, o)
	}

	entries, err := s.holdForSwitchover(ctx, db)
	if entries == nil {
		return err // refused: db was paused already
	}
	defer s.endSwitchover(db)
	if err != nil {
		return err
	}
	began := time.Now()
	s.log.Warn("SWITCHOVER: writes paused; waiting for the standby to replay everything",
		"database", db, "primary", primary.Name, "standby", target.Name)
	lsn, err := currentLSN(ctx, dial, primary.Host)
	if err != nil {
		return fmt.Errorf("switchover of %s cancelled, still on %s: reading its WAL position: %w", db, primary.Name, err)
	}
	if err := waitReplayed(ctx, dial, target.Host, lsn); err != nil {
		return fmt.Errorf("switchover of %s cancelled, still on %s: waiting for %s to replay up to %s: %w", db, primary.Name, target.Name, lsn, err)
	}
	if err := t.mon.Promote(ctx, target.Name); err != nil {
		return fmt.Errorf("switchover of %s: promoting %s failed (sluice goes on with whichever server the monitor finds writable): %w", db, target.Name, err)
	}
	if _, err := t.mon.Wait(ctx, func(sn topology.Snapshot) bool { return sn.Primary == target.Name }); err != nil {
		return fmt.Errorf("switchover of %s: %s was promoted but is not seen as the primary yet: %w", db, target.Name, err)
	}
	for _, e := range entries {
		e.pool.Reconnect() // idle connections to the old primary: closed now
	}
	s.log.Warn("SWITCHOVER done: the standby is the primary, the old primary is fenced; resuming",
		"database", db, "new_primary", target.Name, "old_primary", primary.Name, "lsn", lsn,
		"paused", time.Since(began).Round(time.Millisecond))
	return nil
}

// switchoverTarget picks the standby to promote: host, which must be a
// reachable standby, or ("") the reachable standby that has replayed the
// most.
func switchoverTarget(snap topology.Snapshot, host string) (topology.HostState, error) {
	if host != "" {
		h, ok := snap.Host(host)
		switch {
		case !ok:
			return h, fmt.Errorf("no host %s (hosts are named as in the configuration)", host)
		case !h.Reachable || h.Role != topology.RoleStandby:
			return h, fmt.Errorf("%s is not a reachable standby (role %s, reachable %v)", host, h.Role, h.Reachable)
		}
		return h, nil
	}
	var best topology.HostState
	found := false
	for _, h := range snap.Hosts {
		if h.Reachable && h.Role == topology.RoleStandby && (!found || h.ReplayLSN > best.ReplayLSN) {
			best, found = h, true
		}
	}
	if !found {
		return best, errors.New("no reachable standby to promote")
	}
	return best, nil
}

// holdForSwitchover pauses db's primary pools (marked switching, so that
// State reports the pause and pools created meanwhile start paused) and waits until they are drained. It
// returns the pools it paused (non-nil, perhaps empty, once it paused:
// endSwitchover must then run whatever happens), nil if it refused.
func (s *Server) holdForSwitchover(ctx context.Context, db string) ([]*poolEntry, error) {
	s.mu.Lock()
	if s.ctl.held(db) {
		s.mu.Unlock()
		return nil, fmt.Errorf("database %s is paused: RESUME it before SWITCHOVER", db)
	}
	if s.ctl.switching == nil {
		s.ctl.switching = map[string]bool{}
	}
	s.ctl.switching[db] = true
	entries := []*poolEntry{}
	for k, e := range s.pools {
		if k.database == db {
			e.pool.Pause()
			entries = append(entries, e)
		}
	}
	s.mu.Unlock()
	for _, e := range entries {
		if err := e.pool.WaitDrained(ctx); err != nil {
			return entries, fmt.Errorf("switchover of %s cancelled before anything changed: server connections still in use: %w", db, err)
		}
	}
	return entries, nil
}

// endSwitchover resumes what holdForSwitchover paused (and any pool
// created meanwhile), unless the operator paused db meanwhile (PAUSE or
// KILL; RESUME is refused while a switchover runs, see Resume).
func (s *Server) endSwitchover(db string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ctl.switching, db)
	if s.ctl.held(db) {
		return
	}
	for _, e := range s.entriesLocked(db) {
		e.pool.Resume()
	}
}

// currentLSN reads the primary's current WAL write position.
func currentLSN(ctx context.Context, dial func(topology.Host) (*backend.Conn, error), h topology.Host) (topology.LSN, error) {
	c, err := dial(h)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return queryLSN(ctx, c, "SELECT pg_catalog.pg_current_wal_lsn()::text")
}

// waitReplayed polls the standby until it has replayed up to lsn.
func waitReplayed(ctx context.Context, dial func(topology.Host) (*backend.Conn, error), h topology.Host, lsn topology.LSN) error {
	c, err := dial(h)
	if err != nil {
		return err
	}
	defer c.Close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := queryLSN(ctx, c, "SELECT coalesce(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::text")
		if err != nil {
			return err
		}
		if got >= lsn {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replayed up to %s: %w", got, ctx.Err())
		case <-tick.C:
		}
	}
}

func queryLSN(ctx context.Context, c *backend.Conn, sql string) (topology.LSN, error) {
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] == nil {
		return 0, fmt.Errorf("unexpected answer to %q", sql)
	}
	return topology.ParseLSN(string(rows[0][0]))
}
