package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"unsafe"

	"github.com/sluice-proxy/sluice/internal/sqlscan"
)

// clientStmt is one of a client's named prepared statements: what it was
// prepared from, and the server-side name it has on every connection.
// Server names are derived from the text, the parameter types and the
// client's search_path, so clients preparing the same query share one
// server statement, and names never collide between different queries.
type clientStmt struct {
	query, params []byte
	srv           string
	// effects are what the lexer saw in query; they are noted again at
	// every Bind, since a statement prepared during one attachment is
	// often executed during another (pgx prepares, then executes after a
	// Sync), and that is where its SET or LISTEN takes effect.
	effects sqlscan.Effects
}

// noopStatement is a statement name sluice never prepares: closing it is
// a no-op the server still answers with CloseComplete.
const noopStatement = "sluice_none"

func (c *txClient) serverName(query, params []byte) string {
	h := sha256.New()
	h.Write([]byte(c.want["search_path"]))
	h.Write([]byte{0})
	h.Write(query)
	h.Write([]byte{0})
	h.Write(params)
	var sum [sha256.Size]byte
	return "sluice_" + hex.EncodeToString(h.Sum(sum[:0])[:12])
}

// text views a query's bytes as a string for sqlscan, which keeps no
// reference to it.
func text(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Message handles one whole client message (wire.FrameSink); c.cur is attached
// and locked.
func (c *txClient) Message(msg []byte) error {
	a := c.cur
	switch msg[0] {
	case 'P':
		return c.onParse(a, msg)
	case 'B':
		return c.onBind(a, msg)
	case 'D', 'C':
		return c.onTarget(a, msg)
	case 'Q':
		if len(msg) > 5 {
			c.noteEffects(a, sqlscan.Scan(text(msg[5:len(msg)-1])))
		}
		// A simple Query destroys the unnamed statement.
		a.tx.UnnamedOwner, c.unnamed = 0, nil
		c.emit(a, msg)
		a.asks++
	case 'S', 'F':
		c.emit(a, msg)
		a.asks++
	case 'X':
		c.terminated = true
		return errTerminated
	default:
		c.emit(a, msg)
	}
	return nil
}

// unscannedQuery is what a Query too large to lex whole (a streamed
// one, over wire.MaxHeldMessage) is taken to do: change settings, create or
// drop state that pins. The settings and pins are then read back from
// the server when the transaction ends (backend.Conn.Snapshot). It may
// also have run DEALLOCATE or DISCARD ALL: streamStart forgets which
// statements the connection holds (they are prepared again when used),
// but keeps the client's own, which a real DEALLOCATE would have dropped
// (the client then finds them working rather than getting 26000). LOAD,
// which Snapshot cannot see, is the one effect such a query can hide.
const unscannedQuery = sqlscan.SetsSession | sqlscan.MayPin | sqlscan.MayUnpin

// StreamStart begins a message forwarded as it arrives (wire.FrameSink): only
// its type matters, except a Query's text, which is not lexed.
func (c *txClient) StreamStart(hdr []byte, _ bool) error {
	a := c.cur
	switch hdr[0] {
	case 'Q':
		c.noteEffects(a, unscannedQuery)
		a.tx.Statements.Clear()
		a.tx.UnnamedOwner, c.unnamed = 0, nil
		a.asks++
	case 'S', 'F':
		a.asks++
	}
	c.out = append(c.out, hdr...)
	a.lastSent = hdr[0]
	return nil
}

// StreamBytes forwards part of a streamed message (wire.FrameSink).
func (c *txClient) StreamBytes(b []byte, _ bool) error {
	c.out = append(c.out, b...)
	return nil
}

func (c *txClient) emit(a *attachment, msg []byte) {
	c.out = append(c.out, msg...)
	a.lastSent = msg[0]
}

func (c *txClient) noteEffects(a *attachment, e sqlscan.Effects) {
	a.effects |= e
	if e&sqlscan.DropsStatements != 0 {
		// DISCARD ALL or DEALLOCATE may drop every statement, the
		// client's and sluice's: forget them (re-preparing is safe, since
		// every Parse sluice sends is preceded by a Close).
		a.tx.Statements.Clear()
		clear(c.stmts)
		c.unnamed = nil
		a.tx.UnnamedOwner = 0
	}
}

func (c *txClient) onParse(a *attachment, msg []byte) error {
	p, err := splitParse(msg)
	if err != nil {
		return err
	}
	effects := sqlscan.Scan(text(p.query))
	c.noteEffects(a, effects)
	if len(p.name) == 0 {
		c.unnamed = &clientStmt{query: clone(p.query), params: clone(p.params), effects: effects}
		c.unnamedSeq++
		a.tx.UnnamedOwner = c.unnamedOwner()
		c.emit(a, msg)
		a.enqueueLocked(pending{answer: '1', action: answerPass})
		return nil
	}
	if st := c.stmts[string(p.name)]; st != nil {
		// PostgreSQL refuses a second Parse of a name (42P05): let the
		// server say so, about the statement it has.
		c.ensurePrepared(a, st)
		c.out = appendParse(c.out, st.srv, p.query, p.params)
		a.lastSent = 'P'
		a.enqueueLocked(pending{answer: '1', action: answerPass})
		return nil
	}
	st := &clientStmt{query: clone(p.query), params: clone(p.params), effects: effects}
	st.srv = c.serverName(st.query, st.params)
	name := string(p.name)
	if c.stmts == nil {
		c.stmts = make(map[string]*clientStmt)
	}
	c.stmts[name] = st
	if a.tx.Statements.Has(st.srv) {
		c.out = appendTarget(c.out, 'C', 'S', noopStatement)
		a.lastSent = 'C'
		a.enqueueLocked(pending{answer: '3', action: answerAsParse, clientName: name, stmt: st})
		return nil
	}
	c.prepare(a, st, answerPass, name)
	return nil
}

// prepare sends Close and Parse of st's server statement (the Close makes
// the Parse safe when sluice's cache forgot a statement that exists).
func (c *txClient) prepare(a *attachment, st *clientStmt, act answerAction, clientName string) {
	if ev := a.tx.Statements.Add(st.srv); ev != "" {
		c.out = appendTarget(c.out, 'C', 'S', ev)
		a.enqueueLocked(pending{answer: '3', action: answerDrop})
	}
	c.out = appendTarget(c.out, 'C', 'S', st.srv)
	a.enqueueLocked(pending{answer: '3', action: answerDrop})
	c.out = appendParse(c.out, st.srv, st.query, st.params)
	a.lastSent = 'P'
	a.enqueueLocked(pending{answer: '1', action: act, srv: st.srv, clientName: clientName, stmt: st})
}

func (c *txClient) ensurePrepared(a *attachment, st *clientStmt) {
	if !a.tx.Statements.Has(st.srv) {
		c.prepare(a, st, answerDrop, "")
	}
}

func (c *txClient) unnamedOwner() uint64 { return c.id<<24 | c.unnamedSeq&(1<<24-1) }

// ensureUnnamed prepares the client's unnamed statement again when this
// connection's unnamed statement is someone else's (drivers such as
// lib/pq Parse in one batch and Bind in the next).
func (c *txClient) ensureUnnamed(a *attachment) {
	if c.unnamed == nil || a.tx.UnnamedOwner == c.unnamedOwner() {
		return
	}
	c.out = appendParse(c.out, "", c.unnamed.query, c.unnamed.params)
	a.lastSent = 'P'
	a.enqueueLocked(pending{answer: '1', action: answerDrop})
	a.tx.UnnamedOwner = c.unnamedOwner()
}

func (c *txClient) onBind(a *attachment, msg []byte) error {
	portal, stmt, rest, err := splitBind(msg)
	if err != nil {
		return err
	}
	c.BindHead(portal, stmt, uint32(len(rest)), true)
	c.out = append(c.out, rest...)
	return nil
}

// BindHead sends a Bind's header and names, the statement's renamed to
// its server name (and prepared first where the connection lacks it);
// restLen body bytes follow, appended or streamed by the caller (wire.FrameSink).
func (c *txClient) BindHead(portal, stmt []byte, restLen uint32, _ bool) error {
	a := c.cur
	if len(stmt) == 0 {
		c.ensureUnnamed(a)
		c.out = appendBindHead(c.out, portal, "", restLen)
		a.lastSent = 'B'
		if c.unnamed != nil && c.unnamed.effects != 0 {
			c.noteEffects(a, c.unnamed.effects)
		}
		return nil
	}
	st := c.stmts[string(stmt)]
	if st == nil {
		c.out = appendBindHead(c.out, portal, text(stmt), restLen) // the server answers 26000, as it should
		a.lastSent = 'B'
		return nil
	}
	c.ensurePrepared(a, st)
	c.out = appendBindHead(c.out, portal, st.srv, restLen)
	a.lastSent = 'B'
	if st.effects != 0 {
		c.noteEffects(a, st.effects) // after the Bind: it is what runs the statement
	}
	return nil
}

// onTarget handles Describe and Close.
func (c *txClient) onTarget(a *attachment, msg []byte) error {
	typ := msg[0]
	kind, name, err := splitTarget(msg)
	if err != nil {
		return err
	}
	if typ == 'C' {
		defer a.enqueueLocked(pending{answer: '3', action: answerPass})
	}
	if kind == 'P' {
		c.emit(a, msg)
		return nil
	}
	if len(name) == 0 {
		if typ == 'D' {
			c.ensureUnnamed(a)
		} else {
			c.unnamed, a.tx.UnnamedOwner = nil, 0
		}
		c.emit(a, msg)
		return nil
	}
	st := c.stmts[string(name)]
	switch {
	case st == nil:
		c.emit(a, msg)
	case typ == 'C':
		// The server statement stays cached for the next client.
		delete(c.stmts, string(name))
		c.out = appendTarget(c.out, 'C', 'S', noopStatement)
		a.lastSent = 'C'
	default:
		c.ensurePrepared(a, st)
		c.out = appendTarget(c.out, 'D', 'S', st.srv)
		a.lastSent = 'D'
	}
	return nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
