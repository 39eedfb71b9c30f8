// Package notify fans LISTEN/NOTIFY out to transaction-pooled clients
// (docs/transaction-pooling.md, "LISTEN and NOTIFY").
//
// A transaction-pooled client holds a server connection only while a
// transaction runs, so the connection that ran its LISTEN is not there
// when a notification comes. Instead, per pool (database, user), one
// dedicated server connection, the listener, LISTENs to the union of the
// channels its clients want, and each NotificationResponse it receives
// is queued for every client listening on that channel; the client's
// own goroutine writes it when the client is between messages.
//
// The pure core has no I/O: Registry (channel → listening clients, and
// which LISTEN/UNLISTEN the listener must send when the union changes:
// Diff and Command), Queue (a client's bounded queue of notifications).
// The I/O is the Hub: one goroutine per listener connection (run), which
// owns the connection's reads from dial to close; commands are written
// to it under the Hub's lock by whoever changed the union. A Subscriber
// is one client's side: its channels (the Hub's lock) and its queue
// (its own lock), which exists only while something is queued.
package notify
