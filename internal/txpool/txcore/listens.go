package txcore

import "github.com/sluice-proxy/sluice/internal/sqlscan"

// Unlistens are the UNLISTENs (and DISCARD ALLs) an attachment's
// statements ran, as the lexer saw them: the LISTEN fan-out
// (internal/notify) drops those channels from the client's when the
// transaction ends. What the client LISTENed to is read back from the
// server instead (backend.Conn.TakeListens), which is exact; what it
// stopped listening to cannot be, since its channels live on the pool's
// listener, not on the connection its transaction ran on.
type Unlistens struct {
	All      bool     // UNLISTEN * or DISCARD ALL
	Channels []string // UNLISTEN ch
}

// Any reports whether anything was unlistened.
func (u Unlistens) Any() bool { return u.All || len(u.Channels) > 0 }

// noteListens records the UNLISTENs of a statement the lexer flagged
// with sqlscan.Listens (mu held). Rare: it may allocate.
func (b *Books) noteListens(query []byte) {
	b.listens.Store(true)
	sqlscan.ListenOps(text(query), func(op sqlscan.ListenOp) {
		switch {
		case op.Kind == sqlscan.UnlistenAll:
			b.unlistens.All = true
		case op.Kind == sqlscan.Unlisten && op.Known:
			b.unlistens.Channels = append(b.unlistens.Channels, op.Channel)
		}
	})
}

// TakeUnlistens returns and forgets the UNLISTENs seen since the last
// call (mu held), as the attachment detaches.
func (b *Books) TakeUnlistens() Unlistens {
	u := b.unlistens
	b.unlistens = Unlistens{}
	b.listens.Store(false)
	return u
}

// Listens reports whether a statement that changes the channels the
// session listens to ran since the last detach: its ReadyForQuery is
// held until the fan-out listens (txpool). Read without mu, at every
// ReadyForQuery: one atomic load.
func (b *Books) Listens() bool { return b.listens.Load() }
