package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-proxy/sluice/internal/pool"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// The operator's commands (the admin console's PAUSE, RESUME, ... and the
// HTTP API's POSTs call these). db "" means every database. Each returns
// an error a person can read (an unknown database is an error); the texts
// follow PgBouncer's where it has the command, so scripts written for it
// keep working.
//
// The mechanics live in the pools (pool.Pause, pool.Reconnect), which
// every borrow goes through in both pool modes: in transaction mode each
// transaction borrows, so a paused pool holds new transactions; in session
// mode a session holds its connection for its whole life, so PAUSE waits
// for sessions to end, as PgBouncer's does (bounded by the caller's ctx).
// The operator's state (which databases are paused or disabled) lives
// here, in Server.ctl, guarded by Server.mu, so that pools created later
// (a new user's, a standby's) start in it.

// DatabaseState is what SHOW DATABASES and SHOW STATE report of a
// database's operator state.
type DatabaseState struct {
	Paused   bool // PAUSE took effect (all server connections released; new transactions held)
	Pausing  bool // PAUSE was asked and waits for server connections to be released
	Disabled bool // DISABLE: new clients are refused
}

// controlState is the operator's state of the databases (Server.ctl,
// guarded by Server.mu).
type controlState struct {
	pausedAll bool            // PAUSE without a database (or KILL of all)
	paused    map[string]bool // PAUSE db, KILL db
	switching map[string]bool // SWITCHOVER db in progress (switchover.go)
	disabled  map[string]bool // DISABLE db
}

// held reports whether db's pools hold new borrows.
func (c *controlState) held(db string) bool {
	return c.pausedAll || c.paused[db] || c.switching[db]
}

// pause marks db ("" = all) paused by the operator. The caller holds
// Server.mu and has checked that not everything is paused.
func (c *controlState) pause(db string) {
	if db == "" {
		c.pausedAll = true
		return
	}
	if c.paused == nil {
		c.paused = map[string]bool{}
	}
	c.paused[db] = true
}

// errShuttingDownHeld fails the borrows a pause held when sluice shuts
// down (failAcquire tells the client sluice is shutting down).
var errShuttingDownHeld = errors.New("sluice is shutting down")

// errAlreadyPaused is PgBouncer's text for PAUSE (or KILL) while
// everything is paused.
var errAlreadyPaused = errors.New("already suspended/paused")

// checkDatabase returns an error for a database sluice does not serve.
func (s *Server) checkDatabase(db string) error {
	if s.state.Load().cfg.Databases[db] == nil {
		return fmt.Errorf("no such database: %s", db)
	}
	return nil
}

// checkDatabaseOrAll is checkDatabase where "" (every database) is allowed.
func (s *Server) checkDatabaseOrAll(db string) error {
	if db == "" {
		return nil
	}
	return s.checkDatabase(db)
}

// entriesLocked returns every pool of db ("" = all): the (database, user)
// pools and the standby pools of the read-only side. s.mu is held.
func (s *Server) entriesLocked(db string) []*poolEntry {
	var out []*poolEntry
	for k, e := range s.pools {
		if db == "" || k.database == db {
			out = append(out, e)
		}
	}
	for name, t := range s.topos {
		if db == "" || name == db {
			out = append(out, t.reads.all()...) // lock-free: no s.mu inside
		}
	}
	return out
}

// holdNewPoolLocked starts a pool created while its database is paused in
// the paused state. s.mu is held.
func (s *Server) holdNewPoolLocked(e *poolEntry) {
	if s.ctl.held(e.key.database) {
		e.pool.Pause()
	}
}

// Pause holds db's new transactions (queued clients wait, not fail) and
// waits until every server connection of db (all its pools, primary and
// standby) is released. ctx bounds the wait for the release (the pause
// stays asked if it ends). As PgBouncer: PAUSE while everything is paused
// is an error ("already suspended/paused"); PAUSE db of a paused db only
// waits again.
func (s *Server) Pause(ctx context.Context, db string) error {
	if err := s.checkDatabaseOrAll(db); err != nil {
		return err
	}
	s.mu.Lock()
	if s.ctl.pausedAll {
		s.mu.Unlock()
		return errAlreadyPaused
	}
	s.ctl.pause(db)
	entries := s.entriesLocked(db)
	for _, e := range entries {
		e.pool.Pause()
	}
	s.mu.Unlock()
	s.log.Warn("PAUSE: new transactions are held until RESUME", "database", orAll(db))
	for _, e := range entries {
		switch err := e.pool.WaitDrained(ctx); {
		case errors.Is(err, pool.ErrResumed):
			return fmt.Errorf("pause of %s ended (RESUME or shutdown) before every server connection was released", orAll(db))
		case err != nil:
			return fmt.Errorf("pause of %s asked, but server connections are still in use (it stays asked; RESUME ends it): %w", orAll(db), err)
		}
	}
	return nil
}

// Resume ends a Pause (or a Kill's pause): held clients go on in the
// order they came. As PgBouncer, RESUME ends only what was paused by the
// same form: RESUME ends PAUSE, RESUME db ends PAUSE db.
func (s *Server) Resume(db string) error {
	if err := s.checkDatabaseOrAll(db); err != nil {
		return err
	}
	s.mu.Lock()
	switch {
	case s.ctl.switching[db] || (db == "" && len(s.ctl.switching) > 0):
		s.mu.Unlock()
		return errors.New("a SWITCHOVER is in progress: it resumes by itself when it ends")
	case db == "" && !s.ctl.pausedAll:
		s.mu.Unlock()
		return errors.New("pooler is not paused/suspended")
	case db == "":
		s.ctl.pausedAll = false
	case !s.ctl.paused[db]:
		s.mu.Unlock()
		return fmt.Errorf("database %s is not paused", db)
	default:
		delete(s.ctl.paused, db)
	}
	for _, e := range s.entriesLocked(db) {
		if !s.ctl.held(e.key.database) {
			e.pool.Resume()
		}
	}
	s.mu.Unlock()
	s.log.Warn("RESUME: held transactions go on", "database", orAll(db))
	return nil
}

// Reconnect closes db's server connections as they are released (idle
// ones at once); new ones are dialled as needed. A session-mode session
// keeps its connection until it ends.
func (s *Server) Reconnect(db string) error {
	if err := s.checkDatabaseOrAll(db); err != nil {
		return err
	}
	s.mu.Lock()
	entries := s.entriesLocked(db)
	s.mu.Unlock()
	for _, e := range entries {
		e.pool.Reconnect()
	}
	s.log.Warn("RECONNECT: server connections are closed as they are released", "database", orAll(db))
	return nil
}

// Kill drops db's clients (SQLSTATE 57P01, "terminating connection due
// to administrator command") and server connections at once. As
// PgBouncer's KILL, it leaves db paused: clients that connect afterwards
// wait until RESUME.
func (s *Server) Kill(db string) error {
	if err := s.checkDatabaseOrAll(db); err != nil {
		return err
	}
	s.mu.Lock()
	if s.ctl.pausedAll {
		s.mu.Unlock()
		return errAlreadyPaused
	}
	s.ctl.pause(db)
	entries := s.entriesLocked(db)
	for _, e := range entries {
		e.pool.Pause()
	}
	var victims []*session
	for sess := range s.sessions {
		if sess.ofDatabase(db) {
			victims = append(victims, sess)
		}
	}
	s.mu.Unlock()
	for _, e := range entries {
		e.pool.Reconnect() // idle ones now; the victims' as they let go
	}
	for _, sess := range victims {
		sess.kill()
	}
	s.log.Warn("KILL: clients and server connections dropped; new clients wait until RESUME",
		"database", orAll(db), "clients", len(victims))
	return nil
}

// KillClient drops one client, by the id shown in SHOW CLIENTS (57P01).
func (s *Server) KillClient(id uint64) error {
	s.mu.Lock()
	var victim *session
	for sess := range s.sessions {
		if sess.id == id {
			victim = sess
			break
		}
	}
	s.mu.Unlock()
	if victim == nil {
		return fmt.Errorf("no such client: %d", id)
	}
	victim.kill()
	s.log.Warn("KILL_CLIENT: client dropped", "client", id, "remote", victim.remote())
	return nil
}

// Disable refuses new clients of db (SQLSTATE 55000, "database does not
// allow connections: db", PgBouncer's text) after they authenticate;
// clients already connected go on. A database is required, as in
// PgBouncer.
func (s *Server) Disable(db string) error {
	return s.setDisabled(db, true)
}

// Enable ends Disable.
func (s *Server) Enable(db string) error {
	return s.setDisabled(db, false)
}

func (s *Server) setDisabled(db string, disabled bool) error {
	if db == "" {
		return errors.New("a database is required")
	}
	if err := s.checkDatabase(db); err != nil {
		return err
	}
	s.mu.Lock()
	if s.ctl.disabled == nil {
		s.ctl.disabled = map[string]bool{}
	}
	if disabled {
		s.ctl.disabled[db] = true
	} else {
		delete(s.ctl.disabled, db)
	}
	s.mu.Unlock()
	s.log.Warn("database enabled or disabled for new clients", "database", db, "disabled", disabled)
	return nil
}

// isDisabled reports whether DISABLE refuses db's new clients.
func (s *Server) isDisabled(db string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctl.disabled[db]
}

// refuseDisabled tells a client of a disabled database why it is refused.
func (ss *session) refuseDisabled(db string) {
	ss.failAs(reasonDatabaseDisabled, wire.CodeObjectNotInPrerequisiteState, "database does not allow connections: "+db, "database", db)
}

// WaitClose waits until db's server connections retired by Reconnect (or
// Kill) are closed: at once when there are none, as PgBouncer's
// WAIT_CLOSE waits for the connections marked close_needed. ctx bounds it.
func (s *Server) WaitClose(ctx context.Context, db string) error {
	if err := s.checkDatabaseOrAll(db); err != nil {
		return err
	}
	s.mu.Lock()
	entries := s.entriesLocked(db)
	s.mu.Unlock()
	for _, e := range entries {
		if err := e.pool.WaitRetired(ctx); err != nil {
			return fmt.Errorf("server connections of %s still open: %w", orAll(db), err)
		}
	}
	return nil
}

// State reports db's operator state.
func (s *Server) State(db string) DatabaseState {
	s.mu.Lock()
	held, disabled := s.ctl.held(db), s.ctl.disabled[db]
	entries := s.entriesLocked(db)
	s.mu.Unlock()
	st := DatabaseState{Disabled: disabled}
	if !held {
		return st
	}
	st.Paused = true
	for _, e := range entries {
		if paused, drained := e.pool.Paused(); paused && !drained {
			st.Paused, st.Pausing = false, true
			break
		}
	}
	return st
}

// failHeldLocked fails the borrows that a pause holds (Shutdown): the
// clients are told sluice is shutting down at once. s.mu is held.
func (s *Server) failHeldLocked() {
	for _, e := range s.entriesLocked("") {
		if s.ctl.held(e.key.database) {
			e.pool.FailWaiting(errShuttingDownHeld)
		}
	}
}

func orAll(db string) string {
	if db == "" {
		return "all databases"
	}
	return db
}
