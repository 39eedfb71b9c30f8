package sqlscan

import "strings"

// ListenKind says what a statement does to the channels a session
// listens to.
type ListenKind uint8

const (
	// Listen: LISTEN channel.
	Listen ListenKind = iota + 1
	// Unlisten: UNLISTEN channel.
	Unlisten
	// UnlistenAll: UNLISTEN * or DISCARD ALL.
	UnlistenAll
)

// ListenOp is one statement that changes the channels a session listens
// to.
type ListenOp struct {
	Kind ListenKind
	// Channel is the channel's name as PostgreSQL knows it (an unquoted
	// name folded to lower case, a quoted one with its doubled quotes
	// undone, either cut to 63 bytes); "" for UnlistenAll, and for a name
	// spelled with Unicode escapes (U&"..."), which the lexer does not
	// decode (Known is then false). It is a copy: the caller may keep it
	// while the query's buffer is reused.
	Channel string
	Known   bool
}

// maxIdentifier is PostgreSQL's NAMEDATALEN - 1: longer names are cut.
const maxIdentifier = 63

// ListenOps calls fn, in order, for each LISTEN, UNLISTEN and DISCARD
// ALL statement that leads a statement of query (the statements Scan
// flags with Listens). Transaction pooling needs it for UNLISTEN only:
// what a session LISTENs to is read back from the server, but what it
// stopped listening to on a connection it no longer holds cannot be.
// A statement whose channel is not a name (a syntax error PostgreSQL
// refuses) gives nothing. It allocates only the names it returns.
func ListenOps(query string, fn func(ListenOp)) {
	l := lexer{s: query}
	start, depth := true, 0
	var lead keyword // LISTEN, UNLISTEN or DISCARD led the statement: this token decides
	for {
		t := l.next()
		if lead != kwNone {
			if op, ok := listenOp(lead, t); ok {
				fn(op)
			}
			lead = kwNone
		}
		switch t.kind {
		case kEnd:
			return
		case kSemi:
			if depth == 0 {
				start = true
			}
			continue
		case kOpen:
			depth++
			continue
		case kClose:
			depth = max(depth-1, 0)
		case kWord:
			if start {
				switch k := lookup(t.text); k {
				case kwListen, kwUnlisten, kwDiscard:
					lead = k
				}
			}
		}
		start = false
	}
}

// listenOp decides the statement led by k from the token after it.
func listenOp(k keyword, next token) (ListenOp, bool) {
	switch k {
	case kwDiscard:
		if next.kind == kWord && lookup(next.text) == kwAll {
			return ListenOp{Kind: UnlistenAll, Known: true}, true
		}
		return ListenOp{}, false
	case kwUnlisten:
		if next.kind == kOther {
			return ListenOp{Kind: UnlistenAll, Known: true}, true // UNLISTEN *: the one non-name form
		}
	}
	kind := Listen
	if k == kwUnlisten {
		kind = Unlisten
	}
	switch next.kind {
	case kWord:
		return ListenOp{Kind: kind, Channel: truncateIdentifier(foldIdentifier(next.text)), Known: true}, true
	case kQuoted:
		return ListenOp{Kind: kind, Channel: truncateIdentifier(strings.ReplaceAll(next.text, `""`, `"`)), Known: true}, true
	case kOpaque:
		return ListenOp{Kind: kind}, true
	}
	return ListenOp{}, false
}

// foldIdentifier folds an unquoted name as PostgreSQL does in UTF-8:
// ASCII letters only. The result is a copy.
func foldIdentifier(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// truncateIdentifier cuts a name to maxIdentifier bytes at a character
// boundary, as PostgreSQL does (truncate_identifier).
func truncateIdentifier(s string) string {
	if len(s) <= maxIdentifier {
		return strings.Clone(s)
	}
	n := maxIdentifier
	for n > 0 && s[n]&0xC0 == 0x80 { // s[n] continues a character begun before it
		n--
	}
	return strings.Clone(s[:n])
}
