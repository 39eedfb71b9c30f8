package txcore

import (
	"bytes"
	"encoding/binary"

	"github.com/sluice-proxy/sluice/internal/sqlscan"
)

// SavedStatement is one of a client's prepared statements as it leaves
// for another sluice process (the upgrade hand-off): the client's name
// for it ("" for the unnamed statement), its text, its parameter types
// as Parse carries them (an int16 count, then that many OIDs) and its
// server-side name (derived at Parse time from the search_path then in
// force, so it is carried, not derived again).
type SavedStatement struct {
	Name          string
	Query, Params []byte
	Server        string
	// SQL: a statement of SQL-level PREPARE (sqlprepare.go); Query is
	// then its text after the name ("(int) AS SELECT $1") and Params is
	// unused.
	SQL bool
}

// SavedStatements lists the client's prepared statements, the unnamed one
// included (the client may Bind it again after its Sync). The slices
// are the client's: the caller encodes them before the client runs
// again. Only while the client is idle (its owner holds it outside any
// attachment).
func (c *Client) SavedStatements() []SavedStatement {
	out := make([]SavedStatement, 0, len(c.stmts)+1)
	for name, st := range c.stmts {
		out = append(out, SavedStatement{Name: name, Query: st.query, Params: st.params, Server: st.srv})
	}
	if u := c.unnamed; u != nil {
		out = append(out, SavedStatement{Query: u.query, Params: u.params})
	}
	for name, st := range c.sqlStmts {
		out = append(out, SavedStatement{Name: name, Query: []byte(st.rest), Server: st.srv, SQL: true})
	}
	return out
}

// RestoreStatements gives a client that was just made (on the process
// that adopts it) the statements another process saved. Each is checked
// as a Parse from the client would be (it arrives from another process:
// untrusted): no NUL in its names and text, a well-formed parameter
// list, a server name for a named statement. None is prepared on a
// server here: each is prepared on a connection when first used, as
// after any attach. ErrMalformed: nothing was restored.
func (c *Client) RestoreStatements(saved []SavedStatement) error {
	for _, s := range saved {
		if s.SQL {
			if !validSQLStatement(s) {
				return ErrMalformed
			}
			continue
		}
		p := s.Params
		if bytes.IndexByte(s.Query, 0) >= 0 || bytes.IndexByte([]byte(s.Name), 0) >= 0 || bytes.IndexByte([]byte(s.Server), 0) >= 0 ||
			len(p) < 2 || len(p) != 2+4*int(binary.BigEndian.Uint16(p)) || (s.Name != "") == (s.Server == "") {
			return ErrMalformed
		}
	}
	for _, s := range saved {
		if s.SQL {
			if c.sqlStmts == nil {
				c.sqlStmts = make(map[string]*sqlStmt)
			}
			rest := string(s.Query)
			c.sqlStmts[s.Name] = &sqlStmt{rest: rest, srv: s.Server, effects: sqlscan.Scan(rest)}
			continue
		}
		st := &stmt{query: clone(s.Query), params: clone(s.Params), srv: s.Server, effects: sqlscan.Scan(text(s.Query))}
		if s.Name == "" {
			c.unnamed = st
			c.unnamedSeq++
			continue
		}
		if c.stmts == nil {
			c.stmts = make(map[string]*stmt, len(saved))
		}
		c.stmts[s.Name] = st
	}
	return nil
}

// SeedParsed tells the pool's set that PostgreSQL accepted the server
// form of each of the client's named statements (a Parse that failed
// was forgotten with its answer, so every statement a client keeps was
// accepted). The adopting process calls it for a client another
// process handed over: its pool has not seen these Parses yet, and
// without them a client preparing the same text would wait for a
// server connection (pgbench -M prepared prepares synchronously, and
// deadlocks when its other clients hold every connection meanwhile).
func (c *Client) SeedParsed(set *ParsedSet) {
	for _, st := range c.stmts {
		set.add(st.srv)
	}
}

// validSQLStatement checks a saved SQL-level statement as the client's
// PREPARE was checked: the server name is sluice's form (it is spliced
// into SQL text unquoted), and "PREPARE name" + its text is exactly one
// PREPARE statement of that name (no second statement rides along).
func validSQLStatement(s SavedStatement) bool {
	if s.Name == "" || !serverNameForm(s.Server) || bytes.IndexByte(s.Query, 0) >= 0 {
		return false
	}
	p := sqlscan.SplitPrepared("PREPARE " + s.Server + " " + string(s.Query))
	return p.Kind == sqlscan.Prepare && p.Name == s.Server
}

// serverNameForm reports whether name is "sluice_" and 24 lower-case hex
// digits (txpool's statementName).
func serverNameForm(name string) bool {
	const prefix = "sluice_"
	if len(name) != len(prefix)+24 || name[:len(prefix)] != prefix {
		return false
	}
	for _, r := range name[len(prefix):] {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
