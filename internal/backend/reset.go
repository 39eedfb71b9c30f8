package backend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Setting is one run-time parameter to apply for a session.
type Setting struct{ Name, Value string }

// settingsRoundTrips counts the round trips Apply and SyncSettings made
// to bring a connection's settings to a client's (exported as the
// sluice_settings_round_trips_total metric). Process-wide: it measures
// how often settings affinity missed, not a per-pool figure.
var settingsRoundTrips atomic.Uint64

// SettingsRoundTrips returns how many round trips Apply and SyncSettings
// have made in this process.
func SettingsRoundTrips() uint64 { return settingsRoundTrips.Load() }

// Reset makes the connection fit for the next session: it rolls back an
// open transaction (status 'T' or 'E', as last reported by ReadyForQuery)
// and runs DISCARD ALL, which drops temp tables, prepared statements,
// cursors, advisory locks, LISTENs and every SET. Both statements go in
// one round trip. Any error means the connection must be closed.
func (c *Conn) Reset(ctx context.Context, status byte) error {
	return c.ResetFor(ctx, status, nil)
}

// ResetFor is Reset followed, in the same round trip, by setting next:
// a session pool gives the connection back already configured like the
// session that just ended, so that the next session with the same
// startup parameters (the common case: one application, one driver)
// needs no round trip of its own in Apply.
func (c *Conn) ResetFor(ctx context.Context, status byte, next []Setting) error {
	defer c.watch(ctx)()
	msgs := []pgproto3.FrontendMessage{&pgproto3.Query{String: "DISCARD ALL"}}
	if status != 'I' {
		msgs = append([]pgproto3.FrontendMessage{&pgproto3.Query{String: "ROLLBACK"}}, msgs...)
	}
	c.applied = nil
	if q := setConfigQuery(next, func(Setting) bool { return true }); q != "" {
		msgs = append(msgs, &pgproto3.Query{String: q})
	}
	if err := c.Send(msgs...); err != nil {
		return err
	}
	for range msgs {
		st, srvErr, err := c.readUntilReady(nil)
		if err != nil {
			return err
		}
		if srvErr != nil {
			return &ServerError{Response: srvErr}
		}
		if st != 'I' {
			return fmt.Errorf("server in transaction status %q after reset", st)
		}
	}
	if c.tx != nil { // DISCARD ALL dropped every setting and statement
		clear(c.tx.Settings)
		c.tx.Statements.Clear()
		c.tx.UnnamedOwner = 0
	}
	c.recordApplied(next)
	return c.release()
}

// Apply sets the session's parameters on the server in one round trip,
// skipping those whose reported value already matches. Settings that
// ResetFor left from the previous session and this one does not ask for
// are RESET in the same round trip, so they never leak to it. A value the
// server rejects is returned as *ServerError (the connection stays usable).
func (c *Conn) Apply(ctx context.Context, settings []Setting) error {
	q := setConfigQuery(settings, func(st Setting) bool {
		if v, ok := c.applied[strings.ToLower(st.Name)]; ok && v == st.Value {
			return false // set by ResetFor, and nothing has changed it since
		}
		return c.reported(st.Name) != st.Value || st.Value == ""
	})
	var stale []string
	for name := range c.applied {
		if !slices.ContainsFunc(settings, func(st Setting) bool { return strings.EqualFold(st.Name, name) }) {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	for _, name := range stale {
		if q != "" {
			q += "; "
		}
		q += "RESET " + quoteSettingName(name)
	}
	if q == "" {
		return nil
	}
	settingsRoundTrips.Add(1)
	if _, err := c.exec(ctx, q, nil); err != nil {
		return err
	}
	for _, name := range stale {
		delete(c.applied, name)
	}
	c.recordApplied(settings)
	return nil
}

// setConfigQuery builds one SELECT of set_config calls for the settings
// that need (nil when none does).
func setConfigQuery(settings []Setting, need func(Setting) bool) string {
	var q strings.Builder
	for _, st := range settings {
		if !need(st) {
			continue
		}
		if q.Len() == 0 {
			q.WriteString("SELECT ")
		} else {
			q.WriteString(", ")
		}
		q.WriteString("pg_catalog.set_config(")
		q.WriteString(quote(st.Name))
		q.WriteString(", ")
		q.WriteString(quote(st.Value))
		q.WriteString(", false)")
	}
	return q.String()
}

// recordApplied notes settings as in effect on the session (see applied).
func (c *Conn) recordApplied(settings []Setting) {
	if len(settings) == 0 {
		return
	}
	if c.applied == nil {
		c.applied = make(map[string]string, len(settings))
	}
	for _, st := range settings {
		c.applied[strings.ToLower(st.Name)] = st.Value
	}
}

// exec runs sql (one simple Query, possibly several statements) outside
// the relay, handing every message but ReadyForQuery to fn (may be nil),
// and returns the final transaction status. The server's first error is
// returned as *ServerError; the connection is then still usable.
func (c *Conn) exec(ctx context.Context, sql string, fn func(pgproto3.BackendMessage)) (byte, error) {
	defer c.watch(ctx)()
	if err := c.Send(&pgproto3.Query{String: sql}); err != nil {
		return 0, err
	}
	status, srvErr, err := c.readUntilReady(fn)
	if err == nil {
		err = c.release()
	}
	if err != nil {
		return 0, err
	}
	if srvErr != nil {
		return status, &ServerError{Response: srvErr}
	}
	return status, nil
}

// reported returns the server's reported value of a parameter, matching
// the name without regard to case as PostgreSQL does.
func (c *Conn) reported(name string) string {
	if v, ok := c.Params[name]; ok {
		return v
	}
	for k, v := range c.Params {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// quote makes a standard SQL string literal. With
// standard_conforming_strings on (PostgreSQL's default since 9.1, and
// reported at startup) only the quote needs doubling; otherwise we use
// the E” form and escape backslashes too.
func quote(s string) string {
	if !strings.ContainsRune(s, '\\') {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "E'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// watch applies ctx's deadline and cancellation to the socket for the
// duration of an exchange; the returned func undoes it.
func (c *Conn) watch(ctx context.Context) func() {
	if dl, ok := ctx.Deadline(); ok {
		c.Conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		c.Conn.SetDeadline(time.Time{})
	}
}
