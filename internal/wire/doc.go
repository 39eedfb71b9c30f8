// Package wire frames the PostgreSQL v3 protocol without decoding it.
//
// Every message after startup is a 1-byte type, a 4-byte big-endian length
// (counting itself) and a body. The relay forwards bytes exactly as read and
// uses a Scanner to find message boundaries, so that it can notice the few
// messages it cares about (ReadyForQuery, Terminate, ...) without decoding
// result rows. Decoding, when needed, is done by pgproto3 on a single body.
package wire
