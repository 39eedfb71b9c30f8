package backend

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Pin reasons: session state that lives on one server connection and
// cannot follow a client to another, as reported by Snapshot.
const (
	PinTempTable   = "temp_table"
	PinAdvisory    = "advisory_lock"
	PinListen      = "listen"
	PinHoldCursor  = "hold_cursor"
	PinSQLPrepare  = "sql_prepare"
	PinRole        = "set_role"
	PinLoad        = "load" // from the client's SQL; Snapshot cannot see it
	PinUnsupported = "unsupported_setting"
)

// TxState is what transaction pooling knows about a server connection's
// session, kept with the connection across clients. Like the Conn, it
// belongs to whoever holds the connection.
type TxState struct {
	// Settings are the session-level settings in effect (source
	// "session"), by lower-case name.
	Settings map[string]string
	// Statements are the protocol-level prepared statements sluice made.
	Statements *StatementCache
	// UnnamedOwner identifies whose statement the unnamed prepared
	// statement is (0: nobody's, or unknown).
	UnnamedOwner uint64
}

// Tx returns the connection's transaction pooling state, creating it on
// first use with a statement cache of maxStatements.
func (c *Conn) Tx(maxStatements int) *TxState {
	if c.tx == nil {
		c.tx = &TxState{Settings: map[string]string{}, Statements: NewStatementCache(maxStatements)}
	}
	return c.tx
}

// SyncSettings makes the connection's session-level settings equal want
// (lower-case names) in one round trip: settings that differ are set,
// settings a previous client made that want lacks are RESET. A value the
// server rejects is returned as *ServerError and nothing changes.
//
// It runs on every transaction-pooled attach, on the client's goroutine,
// whose stack should stay small: the common case (the client SET nothing,
// and settings affinity gave it a connection opened with its startup
// parameters) is decided here in a small frame without allocating; only
// a real difference goes on to syncSettings, whose frame is large.
func (c *Conn) SyncSettings(ctx context.Context, want map[string]string, maxStatements int) error {
	tx := c.Tx(maxStatements)
	if len(want) == 0 && len(tx.Settings) == 0 {
		return nil
	}
	if c.settingsMatch(tx, want) {
		return nil // checked without allocating
	}
	return c.syncSettings(ctx, tx, want)
}

// syncSettings is SyncSettings' round trip (see there).
//
//go:noinline
func (c *Conn) syncSettings(ctx context.Context, tx *TxState, want map[string]string) error {
	var q strings.Builder
	var set []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		v := want[k]
		cur, ok := tx.Settings[k]
		if !ok {
			cur, ok = c.reportedOK(k)
		}
		if ok && cur == v {
			continue
		}
		set = append(set, k)
		if len(set) == 1 {
			q.WriteString("SELECT ")
		} else {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "pg_catalog.set_config(%s, %s, false)", quote(k), quote(v))
	}
	var reset []string
	for _, k := range slices.Sorted(maps.Keys(tx.Settings)) {
		if _, ok := want[k]; !ok {
			reset = append(reset, k)
			if q.Len() > 0 {
				q.WriteString("; ")
			}
			q.WriteString("RESET ")
			q.WriteString(quoteSettingName(k))
		}
	}
	if q.Len() == 0 {
		return nil
	}
	settingsRoundTrips.Add(1)
	if _, err := c.exec(ctx, q.String(), nil); err != nil {
		return err
	}
	for _, k := range set {
		tx.Settings[k] = want[k]
	}
	for _, k := range reset {
		delete(tx.Settings, k)
	}
	return nil
}

// settingsMatch reports whether the connection's session settings are
// want already.
func (c *Conn) settingsMatch(tx *TxState, want map[string]string) bool {
	for k, v := range want {
		cur, ok := tx.Settings[k]
		if !ok {
			cur, ok = c.reportedOK(k)
		}
		if !ok || cur != v {
			return false
		}
	}
	for k := range tx.Settings {
		if _, ok := want[k]; !ok {
			return false
		}
	}
	return true
}

// quoteSettingName quotes each dot-separated part of a setting name as
// an identifier (custom settings are "prefix.name").
func quoteSettingName(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

func (c *Conn) reportedOK(name string) (string, bool) {
	if v, ok := c.Params[name]; ok {
		return v, true
	}
	for k, v := range c.Params {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// snapshotSQL reads the session-level settings and the state that pins a
// session, in one round trip. SQL-level prepared statements named as
// sluice names its own (transaction pooling rewrites a lone PREPARE to
// one, txcore's sqlprepare.go) do not pin: sluice tracks them. The first statement's parameter list is
// filled with the reported parameters so that Params is refreshed too.
const snapshotSettingsSQL = `SELECT name, setting, source = 'session' FROM pg_catalog.pg_settings WHERE source = 'session' OR name IN (%s)`

const snapshotPinsSQL = `SELECT
 (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema()),
 (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()),
 (SELECT count(*) FROM pg_catalog.pg_listening_channels()),
 (SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable),
 (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql AND name !~ '^sluice_([0-9a-f]{24}|none)$'),
 current_user <> session_user`

var pinColumns = []string{PinTempTable, PinAdvisory, PinListen, PinHoldCursor, PinSQLPrepare, PinRole}

// Snapshot reads what the session on this connection holds now: its
// session-level settings (stored in Tx().Settings, and in Params for
// reported ones) and the reasons it cannot be shared (nil when none).
// It must run with the connection idle (ReadyForQuery 'I').
func (c *Conn) Snapshot(ctx context.Context, maxStatements int) (pins []string, err error) {
	tx := c.Tx(maxStatements)
	names := make([]string, 0, len(c.Params))
	for k := range c.Params {
		names = append(names, quote(k))
	}
	slices.Sort(names)
	if len(names) == 0 {
		names = append(names, "''")
	}
	q := fmt.Sprintf(snapshotSettingsSQL, strings.Join(names, ", ")) + "; " + snapshotPinsSQL
	settings := map[string]string{}
	result := 0
	_, err = c.exec(ctx, q, func(m pgproto3.BackendMessage) {
		switch m := m.(type) {
		case *pgproto3.RowDescription:
			result++
		case *pgproto3.DataRow:
			switch {
			case result == 1 && len(m.Values) == 3:
				name, val := string(m.Values[0]), string(m.Values[1])
				if string(m.Values[2]) == "t" {
					settings[strings.ToLower(name)] = val
				}
				if _, ok := c.Params[name]; ok {
					c.setParam(name, val)
				}
			case result == 2 && len(m.Values) == len(pinColumns):
				for i, v := range m.Values {
					if s := string(v); s != "0" && s != "f" {
						pins = append(pins, pinColumns[i])
					}
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	tx.Settings = settings
	return pins, nil
}

// Rollback ends an open transaction (status 'T' or 'E') and leaves every
// other piece of session state alone, so transaction pooling can reuse
// the connection with its prepared statements.
func (c *Conn) Rollback(ctx context.Context) error {
	st, err := c.exec(ctx, "ROLLBACK", nil)
	switch {
	case err != nil:
		return err
	case st != 'I':
		return fmt.Errorf("server in transaction status %q after ROLLBACK", st)
	}
	return nil
}
