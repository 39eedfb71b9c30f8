package proxy

import (
	"context"
	"errors"
)

// The operator's commands (the admin console's PAUSE, RESUME, ... and the
// HTTP API's POSTs call these). db "" means every database. Each returns
// an error a person can read (an unknown database is an error).
//
// This file is the contract between the console/API and the proxy; the
// bodies are filled in by the control work (issue 14).

// ErrNotImplemented is returned by commands not built yet.
var ErrNotImplemented = errors.New("not implemented yet")

// DatabaseState is what SHOW DATABASES and SHOW STATE report of a
// database's operator state.
type DatabaseState struct {
	Paused   bool // PAUSE took effect (all server connections released; new transactions held)
	Pausing  bool // PAUSE was asked and waits for server connections to be released
	Disabled bool // DISABLE: new clients are refused
}

// Pause waits until every server connection of db is released, then holds
// new transactions (queued clients wait, not fail) until Resume. ctx
// bounds the wait for the release (the pause stays asked if it ends).
func (s *Server) Pause(ctx context.Context, db string) error { return ErrNotImplemented }

// Resume ends a Pause.
func (s *Server) Resume(db string) error { return ErrNotImplemented }

// Reconnect closes db's server connections as they are released (new ones
// are dialled as needed).
func (s *Server) Reconnect(db string) error { return ErrNotImplemented }

// Kill drops db's clients and server connections at once.
func (s *Server) Kill(db string) error { return ErrNotImplemented }

// KillClient drops one client, by the id shown in SHOW CLIENTS.
func (s *Server) KillClient(id uint64) error { return ErrNotImplemented }

// Disable refuses new clients of db with a clear error; Enable ends that.
func (s *Server) Disable(db string) error { return ErrNotImplemented }

// Enable ends Disable.
func (s *Server) Enable(db string) error { return ErrNotImplemented }

// WaitClose waits until db's server connections that were open when it
// was called are closed (after Reconnect or a reload changed them).
func (s *Server) WaitClose(ctx context.Context, db string) error { return ErrNotImplemented }

// Switchover is a planned, lossless promotion of db's standby host (""
// picks the most caught-up standby): pause writes, wait for the standby to
// replay everything, promote it, fence the old primary, resume.
func (s *Server) Switchover(ctx context.Context, db, host string) error {
	return ErrNotImplemented
}

// State reports db's operator state.
func (s *Server) State(db string) DatabaseState { return DatabaseState{} }
