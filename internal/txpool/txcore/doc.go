// Package txcore is the pure core of transaction pooling: everything the
// engine decides about the bytes it relays, with no I/O. The loops in
// internal/txpool (the client's and the attachment's) read and write the
// sockets and hand each chunk to these values:
//
//   - Client (client.go, up.go) is a transaction-pooled client's state
//     that follows it from server connection to server connection: its
//     prepared statements and their server names, its settings and pins.
//     It is the wire.FrameSink the client-side framer feeds whole
//     messages to: it rewrites statement names and notes effects, and
//     appends what the server must receive to Out.
//   - Books (books.go) is one attachment's bookkeeping: the
//     answer queue of the Parse and Close messages sluice sent, the
//     requests asked and answered, the transaction status, the effects
//     seen. Its owner guards it with the attachment's mutex.
//   - DownFilter (down.go) scans server bytes, forwards them unchanged
//     except for the answers the queue says to drop or turn around, and
//     reports ReadyForQuery, statement-mode breaches, unsolicited errors.
//   - LocalParse (localparse.go) answers a lone Parse + Sync without a
//     server connection when the pool knows the statement parses.
//
// It imports no net, os or crypto/tls (check with go list -deps): the
// statement-name hash (crypto/sha256 reaches os) is given by the owner
// (Namer).
package txcore
