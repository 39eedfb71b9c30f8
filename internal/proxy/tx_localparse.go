package proxy

import (
	"encoding/binary"
	"sync"

	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// parsedSet remembers the server statement names PostgreSQL accepted a
// Parse for on some connection of one pool (database, user). Bounded:
// past maxParsed names it stops learning, and clients simply wait for a
// connection as before.
type parsedSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const maxParsed = 10000

func (s *parsedSet) add(name string) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]struct{})
	}
	if len(s.m) < maxParsed {
		s.m[name] = struct{}{}
	}
	s.mu.Unlock()
}

func (s *parsedSet) remove(name string) {
	s.mu.Lock()
	delete(s.m, name)
	s.mu.Unlock()
}

func (s *parsedSet) has(name string) bool {
	s.mu.Lock()
	_, ok := s.m[name]
	s.mu.Unlock()
	return ok
}

// parseCompleteReady is ParseComplete then ReadyForQuery (idle).
var parseCompleteReady = []byte{'1', 0, 0, 0, 4, 'Z', 0, 0, 0, 5, 'I'}

// answerParseLocally answers, without a server connection, a chunk that
// is exactly Parse (named) + Sync from a client outside a transaction,
// when the statement's server form is one PostgreSQL has already
// accepted for this pool. Why: libpq's PQprepare (pgbench -M prepared)
// prepares synchronously, blocking its whole thread; when every server
// connection is held mid-transaction by other clients of the same
// threads, waiting for a connection to answer that Parse never ends. The
// statement is prepared on a connection at its first Bind or Describe,
// as any client statement is; if the server refuses it then (a table
// dropped meanwhile), the client gets the error there instead.
//
// It reports whether it answered; false leaves the chunk to the usual
// path. Statements the lexer sees a session effect in (other than BEGIN,
// which only matters when executed) never qualify.
func (c *txClient) answerParseLocally(chunk []byte) bool {
	if !c.up.AtBoundary() || len(chunk) < 2*wire.HeaderLen || chunk[0] != 'P' || c.entry == nil {
		return false
	}
	l := int(binary.BigEndian.Uint32(chunk[1:wire.HeaderLen]))
	if l < 4 || l+1+wire.HeaderLen != len(chunk) {
		return false
	}
	if sync := chunk[l+1:]; sync[0] != 'S' || binary.BigEndian.Uint32(sync[1:]) != 4 {
		return false
	}
	p, err := splitParse(chunk[:l+1])
	if err != nil || len(p.name) == 0 || c.stmts[string(p.name)] != nil {
		return false // the unnamed statement, or a second Parse of a name (42P05): the server answers
	}
	effects := sqlscan.Scan(text(p.query))
	if effects&^sqlscan.Begins != 0 {
		return false // noted at Bind anyway, but keep statements with session effects on the plain path
	}
	srv := c.serverName(p.query, p.params)
	if !c.entry.parsed.has(srv) || !c.idleUnattached() {
		return false
	}
	if c.stmts == nil {
		c.stmts = make(map[string]*clientStmt)
	}
	c.stmts[string(p.name)] = &clientStmt{query: clone(p.query), params: clone(p.params), srv: srv, effects: effects}
	if _, err := c.ss.client.Write(parseCompleteReady); err != nil {
		return false // the next read fails and ends the session
	}
	c.bytesDown.Add(float64(len(parseCompleteReady)))
	return true
}

// idleUnattached reports whether the client holds no server connection
// and its last attachment ended cleanly, so nothing else writes to it.
func (c *txClient) idleUnattached() bool {
	a, err := c.liveAttachment()
	return a == nil && err == nil
}
