package txcore

import (
	"sync/atomic"

	"github.com/sluice-proxy/sluice/internal/backend/stmtcache"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
)

// Books is one attachment's bookkeeping, from attach to detach: what was
// asked of the server connection and what it answered. The attachment
// embeds it and guards it with its mutex ("mu" below): the client's
// loop writes requests under it (Client.Cur), the attachment's loop
// records answers under it (DownFilter.Filter), except queued, read
// without the lock on the hot path.
type Books struct {
	Client *Client // whose attachment
	// Statements and UnnamedOwner are the server connection's (its
	// backend.TxState): which statements sluice prepared on it, and
	// whose the unnamed one is.
	Statements   *stmtcache.Cache
	UnnamedOwner *uint64
	// Parsed is the pool's set of statements known to parse (nil: none
	// kept), learnt from ParseComplete answers, for LocalParse.
	Parsed *ParsedSet
	name   Namer

	queue          []pending
	queued         atomic.Int32 // len(queue)
	Asks, GotZ     int64        // Query/Sync/FunctionCall sent; ReadyForQuery received
	Status         byte         // of the last ReadyForQuery
	LastSent       byte         // type of the last message sent
	Effects        sqlscan.Effects
	SawParamStatus bool
	listens        atomic.Bool // listens.go: noteListens ran since the last detach
	// The UNLISTENs seen (listens.go): those committed, those whose
	// transaction has not ended, whether it was aborted since the last
	// ReadyForQuery, and, read by the down side without mu, whether any
	// waits (so that a CommandComplete costs one atomic load otherwise).
	unlistens    Unlistens
	txUnlistens  []pendingUnlisten
	txAborted    bool
	unlistenOpen atomic.Bool
}

// Init readies b for a new attachment of c to a server connection whose
// statement cache and unnamed statement owner are given; name names the
// statements c prepares.
func (b *Books) Init(c *Client, stmts *stmtcache.Cache, unnamedOwner *uint64, parsed *ParsedSet, name Namer) {
	b.Client, b.Statements, b.UnnamedOwner, b.Parsed, b.name = c, stmts, unnamedOwner, parsed, name
	b.Status = 'I'
}

// Busy reports whether the server owes answers or the client has sent
// part of a batch without its Sync (mu held). midStream is the client
// framer's: a message is being streamed through.
func (b *Books) Busy(midStream bool) bool {
	switch b.LastSent {
	case 0, 'Q', 'S', 'F':
	default:
		return true
	}
	return b.Asks != b.GotZ || len(b.queue) > 0 || midStream
}

// Idle reports whether the connection may leave the client as far as the
// protocol goes (mu held): idle outside a transaction with every request
// answered, and no state that pins the client to it (unless that state
// may be gone: then Detach's snapshot decides).
func (b *Books) Idle(midStream bool) bool {
	if b.Status != 'I' || b.Busy(midStream) {
		return false
	}
	return len(b.Client.Pins) == 0 || b.NeedSnapshot()
}

// NeedSnapshot reports whether what the client did may have changed its
// settings or pins, which must then be read back from the server.
func (b *Books) NeedSnapshot() bool {
	return b.SawParamStatus || b.Effects&(sqlscan.SetsSession|sqlscan.MayPin|sqlscan.MayUnpin|sqlscan.Load) != 0
}

// TakeEffects reports, as the attachment decides to detach, whether a
// snapshot is needed and whether LOAD was run (which pins for good), and
// forgets the effects seen (mu held).
func (b *Books) TakeEffects() (snapshot, load bool) {
	snapshot, load = b.NeedSnapshot(), b.Effects&sqlscan.Load != 0
	b.Effects, b.SawParamStatus = 0, false
	return snapshot, load
}

// idleForUnsolicited reports whether the server owes the client nothing
// and the client is idle, so that an ErrorResponse now is the server
// ending the connection (mu held).
func (b *Books) idleForUnsolicited() bool {
	return b.Asks == b.GotZ && b.Status == 'I' && len(b.queue) == 0 && b.LastSent != 'd'
}

// Every Parse and Close that transaction pooling sends to the server is
// queued with what to do with its answer (ParseComplete '1' or
// CloseComplete '3'). The server answers them in order, or skips them all
// after an error until the next Sync; so the head of the queue always
// belongs to the next answer, and entries still queued when their
// batch's ReadyForQuery arrives were skipped.

// answerAction says what happens to the server's answer.
type answerAction uint8

const (
	answerPass    answerAction = iota // the client's own Parse or Close: forward
	answerDrop                        // sluice's own Parse or Close: drop
	answerAsParse                     // a Close standing in for the Parse of a statement already prepared: answer ParseComplete
)

// pending is one Parse or Close awaiting its answer, or one statement
// of a Query sluice rewrote awaiting its CommandComplete ('C', with the
// command tag expected: sqlprepare.go).
type pending struct {
	answer byte // '1', '3' or 'C'
	action answerAction
	tag    string // for 'C'
	z      int64  // the ReadyForQuery (counted from attach) ending its batch
	// Undone if the server skipped it: srv leaves the statement cache,
	// and the client's statement clientName (if still stmt) and SQL-level
	// statement sqlName (if still sql) are forgotten; with restore, they
	// are given back instead (a DEALLOCATE that failed).
	srv        string
	clientName string
	stmt       *stmt
	sqlName    string
	sql        *sqlStmt
	restore    bool
}

// enqueue records a message about to be sent (mu held).
func (b *Books) enqueue(p pending) {
	p.z = b.Asks + 1
	b.queue = append(b.queue, p)
	b.queued.Add(1)
}

// answer pops the entry for an answer of type typ and says what to do
// with it (mu held). Without a matching entry the answer passes, and
// unexpected is true (the caller logs it).
func (b *Books) answer(typ byte) (act answerAction, unexpected bool) {
	if len(b.queue) == 0 || b.queue[0].answer != typ {
		return answerPass, true
	}
	act = b.queue[0].action
	if typ == '1' && b.queue[0].srv != "" && b.Parsed != nil {
		b.Parsed.add(b.queue[0].srv)
	}
	b.pop()
	return act, false
}

// answerCommand pops the entry for a CommandComplete whose body is
// bodyLen bytes starting with first, if the head of the queue awaits it
// (mu held); the client's own CommandCompletes find no such head. body
// is the whole body, which must be the awaited tag exactly (a tag of the
// same length and first letter is not it). The filter holds a short
// CommandComplete back whole while one is awaited, so a nil body means
// the message began before the entry was queued, hence before its
// request was sent: it is not the answer.
func (b *Books) answerCommand(first byte, bodyLen uint32, body []byte) (act answerAction, ok bool) {
	if len(b.queue) == 0 || b.queue[0].answer != 'C' {
		return answerPass, false
	}
	p := b.queue[0]
	if first != p.tag[0] || int(bodyLen) != len(p.tag)+1 {
		return answerPass, false // not the answer awaited: Books.ready undoes the entry at its ReadyForQuery
	}
	if body == nil || string(body[:len(p.tag)]) != p.tag || body[len(p.tag)] != 0 {
		return answerPass, false
	}
	b.pop()
	return p.action, true
}

// awaitsCommand reports whether the next answer awaited is a
// CommandComplete (mu held).
func (b *Books) awaitsCommand() bool { return len(b.queue) > 0 && b.queue[0].answer == 'C' }

func (b *Books) pop() {
	b.queue[0] = pending{}
	b.queue = b.queue[1:]
	if len(b.queue) == 0 {
		b.queue = nil
	}
	b.queued.Add(-1)
}

// ready handles ReadyForQuery number z (mu held): entries of its batch
// that were never answered were skipped by the server, so what they
// would have created does not exist.
func (b *Books) ready(z int64) {
	for len(b.queue) > 0 && b.queue[0].z <= z {
		p := b.queue[0]
		if p.srv != "" {
			b.Statements.Remove(p.srv)
			if p.answer == '1' && b.Parsed != nil {
				b.Parsed.remove(p.srv) // skipped, maybe refused: no longer known to parse
			}
		}
		if p.restore {
			b.Client.restore(p)
		} else {
			if p.clientName != "" && b.Client.stmts[p.clientName] == p.stmt {
				delete(b.Client.stmts, p.clientName)
			}
			if p.sqlName != "" && b.Client.sqlStmts[p.sqlName] == p.sql {
				delete(b.Client.sqlStmts, p.sqlName)
			}
		}
		b.pop()
	}
}
