package txcore

import (
	"strings"

	"github.com/sluice-proxy/sluice/internal/sqlscan"
)

// SQL-level prepared statements (PREPARE, EXECUTE, DEALLOCATE in a Query)
// follow the client from connection to connection like protocol-level
// ones: the client's names are its own, the server's are sluice_ + hex,
// derived from the statement's text (sqlParams keeps them apart from a
// Parse of the same text, whose types are OIDs) and shared by the
// clients that prepare the same statement, in the connection's statement
// cache with the protocol-level ones (max_prepared_statements, least
// recently used closed first: a Close closes a statement PREPARE made
// too). Only a Query that is exactly one such statement is rewritten
// (sqlscan.SplitPrepared); anything else goes to the server as it is and
// pins as before (the snapshot sees the client's own names).
//
//   - PREPARE name ... becomes Close sluice_x + PREPARE sluice_x ...: the
//     server answers CommandComplete "PREPARE" as for the client's name;
//     a PREPARE the server refuses leaves nothing behind (its queued
//     answer is skipped, see Books.ready). PREPARE is not transactional
//     in PostgreSQL (a rollback keeps the statement), and neither is this.
//   - EXECUTE name ... becomes EXECUTE sluice_x ..., preceded, when the
//     connection lacks the statement, by Close sluice_x and, in the same
//     Query, "PREPARE sluice_x ...\n;" whose CommandComplete is dropped.
//   - DEALLOCATE name forgets the client's name; the server statement
//     stays for others (as a protocol Close), and the client's
//     CommandComplete "DEALLOCATE" comes from a throwaway statement.
//   - A name the client does not have goes to the server unchanged, which
//     answers 26000 with the client's name, as PostgreSQL does; a PREPARE
//     of a name the client has gets 42P05 (raised on the server, so that
//     a transaction it is in fails as it would).

// sqlStmt is one of a client's SQL-level prepared statements.
type sqlStmt struct {
	// rest is the client's text after the name up to the statement's
	// end: "(int) AS SELECT $1". The server's PREPARE is
	// "PREPARE " + srv + " " + rest.
	rest string
	srv  string
	// effects are the lexer's for rest, noted at each EXECUTE (where the
	// statement runs), not at PREPARE.
	effects sqlscan.Effects
}

// sqlParams stands for the parameter types in a SQL-level statement's
// server name: a Parse's are 2+4n bytes, never 3, so a PREPARE never
// gets the name of a Parse of the same text.
var sqlParams = []byte("sql")

// throwaway is the statement a rewritten DEALLOCATE prepares and
// deallocates, for the client's CommandComplete "DEALLOCATE".
const throwaway = noopStatement

// Command tags whose CommandComplete the books await.
const (
	tagPrepare    = "PREPARE"
	tagDeallocate = "DEALLOCATE"
)

// onPreparedQuery rewrites a Query whose text q is exactly one PREPARE,
// EXECUTE or DEALLOCATE of a statement sluice tracks; it reports false
// (nothing done) for any other text, which then goes as it is.
func (c *Client) onPreparedQuery(a *Books, q string) bool {
	p := sqlscan.SplitPrepared(q)
	switch p.Kind {
	case sqlscan.Prepare:
		if c.sqlStmts[p.Name] != nil || c.stmts[p.Name] != nil {
			raise, ok := raiseQuery("42P05", `prepared statement "`+p.Name+`" already exists`, "")
			if !ok {
				return false
			}
			c.emitQuery(a, raise)
			return true
		}
		rest := strings.Clone(q[p.NameEnd:p.End])
		st := &sqlStmt{rest: rest, effects: sqlscan.Scan(rest)}
		st.srv = c.serverName(a.name, []byte(rest), sqlParams)
		if c.sqlStmts == nil {
			c.sqlStmts = make(map[string]*sqlStmt)
		}
		name := strings.Clone(p.Name)
		c.sqlStmts[name] = st
		c.closeForPrepare(a, st.srv)
		a.enqueue(pending{answer: 'C', tag: tagPrepare, action: answerPass, srv: st.srv, sqlName: name, sql: st})
		c.emitQuery(a, q[:p.NameStart]+" "+st.srv+" "+q[p.NameEnd:])
		return true
	case sqlscan.Execute:
		st := c.sqlStmts[p.Name]
		if st == nil {
			return false
		}
		if st.effects&pinnable != 0 {
			if k := c.refusal(st.effects, st.rest); k != sqlscan.NoPin {
				c.refuseQuery(a, k)
				return true
			}
			c.notePinCause(st.effects, q)
		}
		exec := q[:p.NameStart] + " " + st.srv + " " + q[p.NameEnd:]
		if a.Statements.Has(st.srv) {
			c.emitQuery(a, exec)
		} else {
			c.closeForPrepare(a, st.srv)
			a.enqueue(pending{answer: 'C', tag: tagPrepare, action: answerDrop, srv: st.srv})
			c.emitQuery(a, "PREPARE "+st.srv+" "+st.rest+"\n;"+exec)
		}
		if st.effects != 0 {
			c.noteEffects(a, st.effects)
		}
		return true
	case sqlscan.Deallocate:
		st, proto := c.sqlStmts[p.Name], c.stmts[p.Name]
		if st == nil && proto == nil {
			// Not the client's: the server answers 26000, unless the
			// connection has the name from a PREPARE sluice did not take
			// over (the client is pinned by it). Either way none of
			// sluice's statements goes, as Scan's DropsStatements would say.
			c.emitQuery(a, q)
			c.noteEffects(a, sqlscan.MayUnpin)
			return true
		}
		name := strings.Clone(p.Name)
		delete(c.sqlStmts, name)
		delete(c.stmts, name)
		c.Out = appendTarget(c.Out, 'C', 'S', throwaway)
		a.enqueue(pending{answer: '3', action: answerDrop})
		a.enqueue(pending{answer: 'C', tag: tagPrepare, action: answerDrop})
		// Refused (in a failed transaction), the DEALLOCATE changed
		// nothing: the client keeps the statement.
		a.enqueue(pending{answer: 'C', tag: tagDeallocate, action: answerPass, restore: true,
			sqlName: name, sql: st, clientName: name, stmt: proto})
		c.emitQuery(a, "PREPARE "+throwaway+" AS SELECT\n;DEALLOCATE "+throwaway)
		return true
	}
	return false
}

// closeForPrepare records srv as prepared on the connection and sends
// the Closes that make its PREPARE safe: of the statement the cache
// evicts for it, and of srv itself, in case the server has it while the
// cache forgot it.
func (c *Client) closeForPrepare(a *Books, srv string) {
	if ev := a.Statements.Add(srv); ev != "" {
		c.Out = appendTarget(c.Out, 'C', 'S', ev)
		a.enqueue(pending{answer: '3', action: answerDrop})
	}
	c.Out = appendTarget(c.Out, 'C', 'S', srv)
	a.enqueue(pending{answer: '3', action: answerDrop})
}

// emitQuery sends a Query of sluice's making in place of the client's.
// Entries for its answers are queued before it: an entry's batch is the
// ReadyForQuery after the requests sent so far.
func (c *Client) emitQuery(a *Books, q string) {
	c.Out = header(c.Out, 'Q', len(q)+1)
	c.Out = append(append(c.Out, q...), 0)
	a.LastSent = 'Q'
	a.Asks++
}

// raiseQuery is a statement that fails on the server with SQLSTATE code
// and message (and hint, if not empty), so that an error sluice decides
// on has the effect of any other: a transaction it is in fails. It
// reports false if message or hint would end its quoting (never for
// sluice's own texts; a statement name may contain anything).
func raiseQuery(code, message, hint string) (string, bool) {
	const tag = "$sluice$"
	if strings.Contains(message, tag) || strings.Contains(hint, tag) {
		return "", false
	}
	var b strings.Builder
	b.WriteString("DO " + tag + "BEGIN RAISE EXCEPTION USING ERRCODE = '" + code + "', MESSAGE = ")
	b.WriteString(quoteLiteral(message))
	if hint != "" {
		b.WriteString(", HINT = ")
		b.WriteString(quoteLiteral(hint))
	}
	b.WriteString("; END" + tag)
	return b.String(), true
}

// quoteLiteral quotes s as a standard SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// restore gives back the statements a DEALLOCATE that failed had
// forgotten, unless the name was taken meanwhile.
func (c *Client) restore(p pending) {
	if p.sql != nil && c.sqlStmts[p.sqlName] == nil && c.stmts[p.sqlName] == nil {
		if c.sqlStmts == nil {
			c.sqlStmts = make(map[string]*sqlStmt)
		}
		c.sqlStmts[p.sqlName] = p.sql
	}
	if p.stmt != nil && c.stmts[p.clientName] == nil && c.sqlStmts[p.clientName] == nil {
		if c.stmts == nil {
			c.stmts = make(map[string]*stmt)
		}
		c.stmts[p.clientName] = p.stmt
	}
}
