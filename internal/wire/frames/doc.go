// Package frames is the pure part of message framing on the server
// side: the Scanner that finds message boundaries in a byte stream cut
// anywhere, and the few facts about single messages (IsFatal) that a
// relay acts on. It does no I/O and imports no net, os or TLS, so that
// packages meant to be pure (internal/txpool/txcore) can use it; package
// wire re-exports every name, and the rest of sluice uses it from there.
package frames
