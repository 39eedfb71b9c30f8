package txcore

import "github.com/sluice-proxy/sluice/internal/sqlscan"

// Client is a transaction-pooled client's state that follows it from
// server connection to server connection, and the rewriting of what it
// sends (up.go). Its owner (txpool's client) embeds it; the client's
// loop alone uses it, except Pins and stmts, which the attachment's loop
// reads and updates under the attachment's mutex while attached.
type Client struct {
	ID            uint64
	MaxStatements int // the connection's statement cache size (pool.max_prepared_statements)
	// Want holds the session settings the client SET, by lower-case
	// name; each attach makes the connection's equal (SyncSettings).
	Want map[string]string
	// Pins say why the client holds its connection between
	// transactions; Load (below) records that LOAD was run (pinned for
	// good).
	Pins []string

	stmts      map[string]*stmt
	sqlStmts   map[string]*sqlStmt // SQL-level PREPAREs, by the client's name (sqlprepare.go)
	unnamed    *stmt
	unnamedSeq uint64

	// While the client's loop feeds a chunk (holding Cur's mutex): the
	// attachment's books, and the bytes for its server built so far.
	Cur *Books
	Out []byte

	// Policy says whether statements that would pin are refused
	// (pool.pin_policy error; nil: never). PinCause is the beginning of
	// the last statement seen that may pin, to explain a pin (pins.go).
	Policy   PinPolicy
	PinCause string
	// ListensUnpinned: LISTEN goes through the pool's fan-out rather
	// than pinning (limits.max_pending_notifications > 0), so
	// pin_policy error does not refuse it.
	ListensUnpinned bool

	PerStatement bool // pool_mode statement: a transaction that would span statements is refused
	dropRest     bool // the rest of the Bind being sent is dropped (refuseBind)
	Load         bool
	Terminated   bool // the client sent Terminate
}

// Namer derives a statement's server-side name from the client's
// search_path, its text and its parameter types: a collision-resistant
// hash, so that clients preparing the same query share one server
// statement and different queries never share a name. The owner gives
// it (txpool's is SHA-256, and crypto/sha256 reaches os, which this
// package does not import); it is passed where needed rather than kept
// per client, so that an idle client does not pay for it.
type Namer func(searchPath string, query, params []byte) string

// stmt is one of a client's named prepared statements: what it was
// prepared from, and the server-side name it has on every connection.
type stmt struct {
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

func (c *Client) serverName(name Namer, query, params []byte) string {
	return name(c.Want["search_path"], query, params)
}

func (c *Client) unnamedOwner() uint64 { return c.ID<<24 | c.unnamedSeq&(1<<24-1) }
