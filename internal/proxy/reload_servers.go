package proxy

import (
	"slices"

	"github.com/sluice-proxy/sluice/internal/config"
)

// A RELOAD that changes where or how a database's server connections
// log in (hosts, dbname, backend.network, server_tls) retires the pools'
// connections, as PgBouncer does when a database's connect string
// changes: idle ones are closed at once, lent ones when their client
// releases them (SHOW SERVERS' close_needed is 1 meanwhile; WAIT_CLOSE
// waits for them), and the LISTEN fan-out's listener moves at its next
// check. Without it a transaction-pooled client would keep getting idle
// connections to the old server for as long as they stay warm.
//
// What does not retire them: a changed server_password (the connections
// are logged in; PostgreSQL does not end sessions when a password
// changes either), pool sizes and timeouts (applied in place), and
// backend tuning that only matters when dialling (retries, backoff,
// timeouts, keepalive).

// serverMoved reports whether a connection opened under prev would not
// be what one opened under next is. hostsApply is false for a database
// with several hosts: its monitor keeps the hosts it started with until
// a restart, so a changed list does not change where dials go.
func serverMoved(prev, next *config.Database, hostsApply bool) bool {
	return (hostsApply && !slices.Equal(prev.Hosts, next.Hosts)) || prev.DBName != next.DBName ||
		prev.Backend.Network != next.Backend.Network || prev.ServerTLS != next.ServerTLS
}

// retireMoved retires the connections of every pool whose database's
// server changed (moved, from Reload), and those of its standby pools.
// It runs after Reload released s.mu. The retirement is in force when it
// returns (idle connections are out of the pools, SHOW SERVERS shows
// close_needed); closing the idle ones runs on one background goroutine
// (the server's bgWG), since each close may wait a second for an old
// server that no longer answers.
func (s *Server) retireMoved(moved []*poolEntry) {
	if len(moved) == 0 {
		return
	}
	dbs := map[string]bool{}
	var closers []func()
	for _, e := range moved {
		dbs[e.key.database] = true
		closers = append(closers, e.pool.Retire())
	}
	for _, e := range s.readPools() {
		if dbs[e.key.database] {
			closers = append(closers, e.pool.Retire())
		}
	}
	for db := range dbs {
		s.log.Info("RELOAD changed the database's server: its server connections are closed, idle ones now, lent ones when released",
			"database", db)
	}
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		for _, closeIdle := range closers {
			closeIdle()
		}
	}()
}
