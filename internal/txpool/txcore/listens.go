package txcore

import "github.com/sluice-proxy/sluice/internal/sqlscan"

// Unlistens are the UNLISTENs (and DISCARD ALLs) an attachment's
// statements ran in transactions that committed, as the lexer saw them:
// the LISTEN fan-out (internal/notify) drops those channels from the
// client's when the attachment detaches. What the client LISTENed to is
// read back from the server instead (backend.Conn.TakeListens), which is
// exact; what it stopped listening to cannot be, since its channels live
// on the pool's listener, not on the connection its transaction ran on.
type Unlistens struct {
	All      bool     // UNLISTEN * or DISCARD ALL
	Channels []string // UNLISTEN ch
}

// Any reports whether anything was unlistened.
func (u Unlistens) Any() bool { return u.All || len(u.Channels) > 0 }

// An UNLISTEN takes effect when its transaction commits, as in
// PostgreSQL (BEGIN; UNLISTEN ch; ROLLBACK leaves the session listening
// to ch; so does UNLISTEN ch; SELECT 1/0 sent as one Query). The lexer
// sees it when the client sends it, so it waits in txUnlistens, with the
// ReadyForQuery that ends its request, until the server's answers show
// how its transaction ended:
//
//   - a CommandComplete "COMMIT" (COMMIT, END, COMMIT AND CHAIN) commits
//     it at once;
//   - a CommandComplete "ROLLBACK" (ROLLBACK, ABORT, and COMMIT of a
//     failed block) or an ErrorResponse marks the transaction aborted;
//   - at a ReadyForQuery 'I' the transaction is over: the UNLISTENs of
//     its requests are dropped if it was marked aborted since the last
//     ReadyForQuery (or COMMIT), committed otherwise (an implicit
//     transaction that succeeded);
//   - at a ReadyForQuery 'T' or 'E' they wait (a ROLLBACK TO SAVEPOINT
//     also answers "ROLLBACK", and leaves the block open).
//
// Not exact, and documented (docs/transaction-pooling.md): an UNLISTEN
// inside a savepoint that is rolled back to still applies when the block
// commits (undoing it would need the savepoints' names followed), as
// does one before a ROLLBACK AND CHAIN when the chained block commits
// (its answer is ROLLBACK TO SAVEPOINT's: "ROLLBACK", then 'T'), and
// the UNLISTENs of one request (a Query, or a batch up to its Sync)
// holding several transactions all follow its first COMMIT or, without
// one, are dropped if any of its transactions rolled back or failed
// (telling them apart would need each statement's answer matched to
// its text). Detach comes only at a
// ReadyForQuery 'I' with every request answered, so none waits then.

// pendingUnlisten is an UNLISTEN (or UNLISTEN *, DISCARD ALL) whose
// transaction has not ended; z is the ReadyForQuery ending its request.
type pendingUnlisten struct {
	z       int64
	all     bool
	channel string
}

// noteListens records the UNLISTENs of a statement the lexer flagged
// with sqlscan.Listens (mu held), sent in request b.Asks+1. Rare: it
// may allocate.
func (b *Books) noteListens(query []byte) {
	b.listens.Store(true)
	sqlscan.ListenOps(text(query), func(op sqlscan.ListenOp) {
		switch {
		case op.Kind == sqlscan.UnlistenAll:
			b.txUnlistens = append(b.txUnlistens, pendingUnlisten{z: b.Asks + 1, all: true})
		case op.Kind == sqlscan.Unlisten && op.Known:
			b.txUnlistens = append(b.txUnlistens, pendingUnlisten{z: b.Asks + 1, channel: op.Channel})
		}
	})
	if len(b.txUnlistens) > 0 {
		b.unlistenOpen.Store(true)
	}
}

// txEnd is what a CommandComplete says of the transaction it ends.
type txEnd uint8

const (
	txGoesOn     txEnd = iota
	txCommitted        // "COMMIT"
	txRolledBack       // "ROLLBACK": ended, or rolled back to a savepoint
)

// commandEnd classifies a CommandComplete from the first byte of its tag
// and its body's length, and, when tag is not nil, its body (the tag
// and its terminating zero). "ROLLBACK" is the only 8-letter tag that
// begins with R; "COMMIT" shares its length and first letter with
// "COPY n", so it is recognised only from its bytes.
func commandEnd(first byte, bodyLen uint32, tag []byte) txEnd {
	switch {
	case first == 'R' && bodyLen == uint32(len("ROLLBACK"))+1:
		return txRolledBack
	case first == 'C' && bodyLen == uint32(len("COMMIT"))+1 && string(tag) == "COMMIT\x00":
		return txCommitted
	}
	return txGoesOn
}

// unlistenCommand handles a CommandComplete while an UNLISTEN waits
// (mu held): a COMMIT commits the UNLISTENs sent so far, a ROLLBACK
// marks the transaction aborted.
func (b *Books) unlistenCommand(end txEnd) {
	switch end {
	case txCommitted:
		b.settleUnlistens(b.GotZ+1, true)
		b.txAborted = false
	case txRolledBack:
		b.txAborted = true
	}
}

// unlistenError handles an ErrorResponse while an UNLISTEN waits (mu
// held): an error inside a block leaves it failed ('E', and a ROLLBACK
// to come); one that ends a transaction (implicit, or at COMMIT) is
// followed by a ReadyForQuery 'I'.
func (b *Books) unlistenError() { b.txAborted = true }

// unlistenReady handles ReadyForQuery number b.GotZ with status (mu
// held): see above.
func (b *Books) unlistenReady(status byte) {
	if status == 'I' {
		b.settleUnlistens(b.GotZ, !b.txAborted)
	}
	b.txAborted = false
}

// settleUnlistens commits (or drops) the UNLISTENs sent in requests up
// to z (mu held).
func (b *Books) settleUnlistens(z int64, commit bool) {
	n := 0
	for _, u := range b.txUnlistens {
		if u.z > z {
			b.txUnlistens[n] = u
			n++
			continue
		}
		switch {
		case !commit:
		case u.all:
			b.unlistens.All = true
		default:
			b.unlistens.Channels = append(b.unlistens.Channels, u.channel)
		}
	}
	clear(b.txUnlistens[n:])
	b.txUnlistens = b.txUnlistens[:n]
	if n == 0 {
		b.txUnlistens = nil
		b.unlistenOpen.Store(false)
	}
}

// TakeUnlistens returns and forgets the UNLISTENs committed since the
// last call (mu held), as the attachment detaches. Any still waiting for
// their transaction (none at a detach, which comes at a ReadyForQuery
// 'I' with every request answered) are dropped.
func (b *Books) TakeUnlistens() Unlistens {
	u := b.unlistens
	b.unlistens = Unlistens{}
	b.txUnlistens, b.txAborted = nil, false
	b.unlistenOpen.Store(false)
	b.listens.Store(false)
	return u
}

// Listens reports whether a statement that changes the channels the
// session listens to ran since the last detach: its ReadyForQuery is
// held until the fan-out listens (txpool). Read without mu, at every
// ReadyForQuery: one atomic load.
func (b *Books) Listens() bool { return b.listens.Load() }
