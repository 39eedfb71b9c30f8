// Package sqlscan tells, without parsing SQL, what a query text may do to
// session state.
//
// Transaction pooling hands a server connection to another client as soon
// as a transaction ends, which is only safe if the session left nothing
// behind: a SET, a temp table, a LISTEN, a session advisory lock, a WITH HOLD
// cursor, a named prepared statement. Scan runs on every Query and Parse, so
// it is a single allocation-free pass over the text with a tiny lexer that
// knows just enough of PostgreSQL's lexical rules (comments that nest,
// every kind of string literal, quoted identifiers, dollar quotes) never to
// mistake text inside a literal or comment for a command.
//
// The answer is deliberately conservative: a false positive only costs the
// pooler an extra check, while a false negative would leak one client's
// session state to another. What a lexer cannot see stays invisible, though:
// statements run by functions, DO blocks or EXECUTE are inside string
// literals. Strings are lexed as with standard_conforming_strings on (the
// default since PostgreSQL 9.1); with it off, a backslash in a plain '...'
// literal would end the literal somewhere else.
package sqlscan
