package txcore

import (
	"encoding/binary"
	"sync"

	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire/frames"
)

// ParsedSet remembers the server statement names PostgreSQL accepted a
// Parse for on some connection of one pool (database, user). Bounded:
// past maxParsed names it stops learning, and clients simply wait for a
// connection as before. The zero value is ready; safe for concurrent use.
type ParsedSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const maxParsed = 10000

func (s *ParsedSet) add(name string) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]struct{})
	}
	if len(s.m) < maxParsed {
		s.m[name] = struct{}{}
	}
	s.mu.Unlock()
}

func (s *ParsedSet) remove(name string) {
	s.mu.Lock()
	delete(s.m, name)
	s.mu.Unlock()
}

func (s *ParsedSet) has(name string) bool {
	s.mu.Lock()
	_, ok := s.m[name]
	s.mu.Unlock()
	return ok
}

// ParseCompleteReady is ParseComplete then ReadyForQuery (idle): the
// answer the client gets to a Parse answered locally.
var ParseCompleteReady = []byte{'1', 0, 0, 0, 4, 'Z', 0, 0, 0, 5, 'I'}

// LocalStmt is a statement LocalParse found it may answer for. It views
// the chunk's bytes: AddLocal copies them, so it must come before the
// chunk's buffer is reused.
type LocalStmt struct {
	name, query, params []byte
	srv                 string
	effects             sqlscan.Effects
}

// LocalParse decides whether a chunk that is exactly Parse (named) +
// Sync, from a client outside a transaction and with its framer at a
// message boundary (the caller checks both), can be answered without a
// server connection: the statement's server form is one PostgreSQL has
// already accepted for this pool (parsed). Why: libpq's PQprepare
// (pgbench -M prepared) prepares synchronously, blocking its whole
// thread; when every server connection is held mid-transaction by other
// clients of the same threads, waiting for a connection to answer that
// Parse never ends. The statement is prepared on a connection at its
// first Bind or Describe, as any client statement is; if the server
// refuses it then (a table dropped meanwhile), the client gets the error
// there instead.
//
// Statements the lexer sees a session effect in (other than BEGIN,
// which only matters when executed) never qualify. On true the caller
// makes sure no attachment is live, then calls AddLocal and writes
// ParseCompleteReady to the client.
func (c *Client) LocalParse(chunk []byte, parsed *ParsedSet, name Namer) (LocalStmt, bool) {
	if len(chunk) < 2*frames.HeaderLen || chunk[0] != 'P' || parsed == nil {
		return LocalStmt{}, false
	}
	l := int(binary.BigEndian.Uint32(chunk[1:frames.HeaderLen]))
	if l < 4 || l+1+frames.HeaderLen != len(chunk) {
		return LocalStmt{}, false
	}
	if sync := chunk[l+1:]; sync[0] != 'S' || binary.BigEndian.Uint32(sync[1:]) != 4 {
		return LocalStmt{}, false
	}
	p, err := splitParse(chunk[:l+1])
	if err != nil || len(p.name) == 0 || c.stmts[string(p.name)] != nil {
		return LocalStmt{}, false // the unnamed statement, or a second Parse of a name (42P05): the server answers
	}
	effects := sqlscan.Scan(text(p.query))
	if effects&^sqlscan.Begins != 0 {
		return LocalStmt{}, false // noted at Bind anyway, but keep statements with session effects on the plain path
	}
	srv := c.serverName(name, p.query, p.params)
	if !parsed.has(srv) {
		return LocalStmt{}, false
	}
	return LocalStmt{name: p.name, query: p.query, params: p.params, srv: srv, effects: effects}, true
}

// AddLocal records a statement LocalParse accepted as the client's.
func (c *Client) AddLocal(l LocalStmt) {
	if c.stmts == nil {
		c.stmts = make(map[string]*stmt)
	}
	c.stmts[string(l.name)] = &stmt{query: clone(l.query), params: clone(l.params), srv: l.srv, effects: l.effects}
}
