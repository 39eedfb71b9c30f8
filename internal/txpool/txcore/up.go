package txcore

import "github.com/sluice-proxy/sluice/internal/sqlscan"

// The client-to-server side: Client is the wire.FrameSink the client
// loop's framer feeds; every method runs with c.Cur set and its
// attachment's mutex held, and appends to c.Out what the server must
// receive (the client's messages, statement names rewritten, and the
// Close/Parse sluice adds so that the connection has the statements the
// client uses).

// Message handles one whole client message (wire.FrameSink).
func (c *Client) Message(msg []byte) error {
	a := c.Cur
	switch msg[0] {
	case 'P':
		return c.onParse(a, msg)
	case 'B':
		return c.onBind(a, msg)
	case 'D', 'C':
		return c.onTarget(a, msg)
	case 'Q':
		// A simple Query destroys the unnamed statement.
		*a.UnnamedOwner, c.unnamed = 0, nil
		if len(msg) > 5 {
			q := text(msg[5 : len(msg)-1])
			if sqlscan.LeadsPrepared(q) && c.onPreparedQuery(a, q) {
				return nil
			}
			e := sqlscan.Scan(q)
			if e&pinnable != 0 {
				if k := c.refusal(e, q); k != sqlscan.NoPin {
					c.refuseQuery(a, k)
					return nil
				}
				c.notePinCause(e, q)
			}
			c.noteEffects(a, e)
			if e&sqlscan.Listens != 0 {
				a.noteListens(msg[5 : len(msg)-1])
			}
		}
		c.emit(a, msg)
		a.Asks++
	case 'S', 'F':
		c.emit(a, msg)
		a.Asks++
	case 'X':
		c.Terminated = true
		return ErrTerminated
	default:
		c.emit(a, msg)
	}
	return nil
}

// unscannedQuery is what a Query too large to lex whole (a streamed
// one, over wire.MaxHeldMessage) is taken to do: change settings, create or
// drop state that pins. The settings and pins are then read back from
// the server when the transaction ends (backend.Conn.Snapshot). It may
// also have run DEALLOCATE or DISCARD ALL: StreamStart forgets which
// statements the connection holds (they are prepared again when used),
// but keeps the client's own, which a real DEALLOCATE would have dropped
// (the client then finds them working rather than getting 26000). LOAD,
// which Snapshot cannot see, is the one effect such a query can hide.
const unscannedQuery = sqlscan.SetsSession | sqlscan.MayPin | sqlscan.MayUnpin

// StreamStart begins a message forwarded as it arrives (wire.FrameSink): only
// its type matters, except a Query's text, which is not lexed.
func (c *Client) StreamStart(hdr []byte, _ bool) error {
	a := c.Cur
	switch hdr[0] {
	case 'Q':
		c.noteEffects(a, unscannedQuery)
		c.PinCause = "(a Query over 1 MiB, not lexed)"
		a.Statements.Clear()
		*a.UnnamedOwner, c.unnamed = 0, nil
		a.Asks++
	case 'S', 'F':
		a.Asks++
	}
	c.Out = append(c.Out, hdr...)
	a.LastSent = hdr[0]
	return nil
}

// StreamBytes forwards part of a streamed message (wire.FrameSink).
func (c *Client) StreamBytes(b []byte, end bool) error {
	if c.dropRest {
		c.dropRest = !end // a refused Bind's parameters (refuseBind)
		return nil
	}
	c.Out = append(c.Out, b...)
	return nil
}

func (c *Client) emit(a *Books, msg []byte) {
	c.Out = append(c.Out, msg...)
	a.LastSent = msg[0]
}

func (c *Client) noteEffects(a *Books, e sqlscan.Effects) {
	a.Effects |= e
	if e&sqlscan.DropsStatements != 0 {
		// DISCARD ALL or DEALLOCATE may drop every statement, the
		// client's and sluice's: forget them (re-preparing is safe, since
		// every Parse sluice sends is preceded by a Close).
		a.Statements.Clear()
		clear(c.stmts)
		clear(c.sqlStmts)
		c.unnamed = nil
		*a.UnnamedOwner = 0
	}
}

func (c *Client) onParse(a *Books, msg []byte) error {
	p, err := splitParse(msg)
	if err != nil {
		return err
	}
	effects := sqlscan.Scan(text(p.query))
	c.noteEffects(a, effects)
	if len(p.name) == 0 {
		c.unnamed = &stmt{query: clone(p.query), params: clone(p.params), effects: effects}
		c.unnamedSeq++
		*a.UnnamedOwner = c.unnamedOwner()
		c.emit(a, msg)
		a.enqueue(pending{answer: '1', action: answerPass})
		return nil
	}
	if st := c.stmts[string(p.name)]; st != nil {
		// PostgreSQL refuses a second Parse of a name (42P05): let the
		// server say so, about the statement it has.
		c.ensurePrepared(a, st)
		c.Out = appendParse(c.Out, st.srv, p.query, p.params)
		a.LastSent = 'P'
		a.enqueue(pending{answer: '1', action: answerPass})
		return nil
	}
	st := &stmt{query: clone(p.query), params: clone(p.params), effects: effects}
	st.srv = c.serverName(a.name, st.query, st.params)
	name := string(p.name)
	if c.stmts == nil {
		c.stmts = make(map[string]*stmt)
	}
	c.stmts[name] = st
	if a.Statements.Has(st.srv) {
		c.Out = appendTarget(c.Out, 'C', 'S', noopStatement)
		a.LastSent = 'C'
		a.enqueue(pending{answer: '3', action: answerAsParse, clientName: name, stmt: st})
		return nil
	}
	c.prepare(a, st, answerPass, name)
	return nil
}

// prepare sends Close and Parse of st's server statement (the Close makes
// the Parse safe when sluice's cache forgot a statement that exists).
func (c *Client) prepare(a *Books, st *stmt, act answerAction, clientName string) {
	if ev := a.Statements.Add(st.srv); ev != "" {
		c.Out = appendTarget(c.Out, 'C', 'S', ev)
		a.enqueue(pending{answer: '3', action: answerDrop})
	}
	c.Out = appendTarget(c.Out, 'C', 'S', st.srv)
	a.enqueue(pending{answer: '3', action: answerDrop})
	c.Out = appendParse(c.Out, st.srv, st.query, st.params)
	a.LastSent = 'P'
	a.enqueue(pending{answer: '1', action: act, srv: st.srv, clientName: clientName, stmt: st})
}

func (c *Client) ensurePrepared(a *Books, st *stmt) {
	if !a.Statements.Has(st.srv) {
		c.prepare(a, st, answerDrop, "")
	}
}

// ensureUnnamed prepares the client's unnamed statement again when this
// connection's unnamed statement is someone else's (drivers such as
// lib/pq Parse in one batch and Bind in the next).
func (c *Client) ensureUnnamed(a *Books) {
	if c.unnamed == nil || *a.UnnamedOwner == c.unnamedOwner() {
		return
	}
	c.Out = appendParse(c.Out, "", c.unnamed.query, c.unnamed.params)
	a.LastSent = 'P'
	a.enqueue(pending{answer: '1', action: answerDrop})
	*a.UnnamedOwner = c.unnamedOwner()
}

func (c *Client) onBind(a *Books, msg []byte) error {
	portal, stmt, rest, err := splitBind(msg)
	if err != nil {
		return err
	}
	c.BindHead(portal, stmt, uint32(len(rest)), true)
	if c.dropRest {
		c.dropRest = false // a refused Bind's parameters (refuseBind)
		return nil
	}
	c.Out = append(c.Out, rest...)
	return nil
}

// BindHead sends a Bind's header and names, the statement's renamed to
// its server name (and prepared first where the connection lacks it);
// restLen body bytes follow, appended or streamed by the caller (wire.FrameSink).
func (c *Client) BindHead(portal, name []byte, restLen uint32, _ bool) error {
	a := c.Cur
	if st := c.bound(name); st != nil && st.effects&pinnable != 0 {
		if k := c.refusal(st.effects, text(st.query)); k != sqlscan.NoPin {
			c.refuseBind(a, portal, k)
			c.dropRest = restLen > 0 // dropped by onBind, or as StreamBytes brings it
			return nil
		}
		c.notePinCause(st.effects, text(st.query))
	}
	if len(name) == 0 {
		c.ensureUnnamed(a)
		c.Out = appendBindHead(c.Out, portal, "", restLen)
		a.LastSent = 'B'
		if st := c.unnamed; st != nil && st.effects != 0 {
			c.noteEffects(a, st.effects) // DISCARD ALL forgets c.unnamed
			if st.effects&sqlscan.Listens != 0 {
				a.noteListens(st.query)
			}
		}
		return nil
	}
	st := c.stmts[string(name)]
	if st == nil {
		c.Out = appendBindHead(c.Out, portal, text(name), restLen) // the server answers 26000, as it should
		a.LastSent = 'B'
		return nil
	}
	c.ensurePrepared(a, st)
	c.Out = appendBindHead(c.Out, portal, st.srv, restLen)
	a.LastSent = 'B'
	if st.effects != 0 {
		c.noteEffects(a, st.effects) // after the Bind: it is what runs the statement
		if st.effects&sqlscan.Listens != 0 {
			a.noteListens(st.query)
		}
	}
	return nil
}

// bound is the statement a Bind names (nil: unknown to sluice).
func (c *Client) bound(name []byte) *stmt {
	if len(name) == 0 {
		return c.unnamed
	}
	return c.stmts[string(name)]
}

// onTarget handles Describe and Close.
func (c *Client) onTarget(a *Books, msg []byte) error {
	typ := msg[0]
	kind, name, err := splitTarget(msg)
	if err != nil {
		return err
	}
	if typ == 'C' {
		defer a.enqueue(pending{answer: '3', action: answerPass})
	}
	if kind == 'P' {
		c.emit(a, msg)
		return nil
	}
	if len(name) == 0 {
		if typ == 'D' {
			c.ensureUnnamed(a)
		} else {
			c.unnamed, *a.UnnamedOwner = nil, 0
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
		c.Out = appendTarget(c.Out, 'C', 'S', noopStatement)
		a.LastSent = 'C'
	default:
		c.ensurePrepared(a, st)
		c.Out = appendTarget(c.Out, 'D', 'S', st.srv)
		a.LastSent = 'D'
	}
	return nil
}
