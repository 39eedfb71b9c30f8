package sqlscan

import "strings"

// PreparedKind is which SQL-level prepared statement command a Query text
// is (see SplitPrepared).
type PreparedKind uint8

const (
	NotPrepared   PreparedKind = iota // anything else, or a form SplitPrepared does not take apart
	Prepare                           // PREPARE name [(types)] AS statement
	Execute                           // EXECUTE name [(arguments)]
	Deallocate                        // DEALLOCATE [PREPARE] name
	DeallocateAll                     // DEALLOCATE [PREPARE] ALL
)

// PreparedStatement is a Query text that is exactly one PREPARE, EXECUTE
// or DEALLOCATE statement, as SplitPrepared found it. Offsets are into
// the text, so a pooler can put another name in place of the client's
// (text[:NameStart] + name + text[NameEnd:]) without parsing SQL.
type PreparedStatement struct {
	Kind PreparedKind
	// Name is the statement name as PostgreSQL sees it: unquoted names
	// folded to lower case (ASCII, as for identifiers), quoted ones with
	// doubled quotes undone. Empty for DeallocateAll.
	Name string
	// NameStart and NameEnd delimit the name as written, quotes included.
	NameStart, NameEnd int
	// End is where the statement's last token ends: what follows is only
	// whitespace, comments and semicolons.
	End int
}

// maxNameLen is NAMEDATALEN-1: PostgreSQL truncates longer names (with a
// NOTICE), which SplitPrepared does not mimic; it declines them instead.
const maxNameLen = 63

// SplitPrepared reports whether query is a single PREPARE, EXECUTE or
// DEALLOCATE statement and, if so, where its name is. It is meant to run
// only on texts whose first word may be one of those (LeadsPrepared), and
// allocates only to fold a name that is not already lower case.
//
// It declines (NotPrepared) whatever it cannot take apart with certainty,
// so that the caller can treat the text as it treats any other: several
// statements, a text that ends inside a literal or comment, a name spelled
// with Unicode escapes or longer than 63 bytes, PREPARE TRANSACTION, a
// PREPARE without AS or without a statement after it, an EXECUTE followed
// by anything but its argument list.
func SplitPrepared(query string) PreparedStatement {
	l := lexer{s: query}
	t := l.next()
	if t.kind != kWord {
		return PreparedStatement{}
	}
	var kind PreparedKind
	switch {
	case eqFold(t.text, "prepare"):
		kind = Prepare
	case eqFold(t.text, "execute"):
		kind = Execute
	case eqFold(t.text, "deallocate"):
		kind = Deallocate
	default:
		return PreparedStatement{}
	}
	t = l.next()
	if kind == Deallocate && t.kind == kWord && eqFold(t.text, "prepare") {
		// DEALLOCATE PREPARE x; but in "DEALLOCATE prepare" it is the name.
		save := l
		if n := l.next(); n.kind == kWord || n.kind == kQuoted {
			t = n
		} else {
			l = save
		}
	}
	p := PreparedStatement{Kind: kind}
	switch t.kind {
	case kWord:
		p.NameStart, p.NameEnd = l.i-len(t.text), l.i
		if kind == Deallocate && eqFold(t.text, "all") {
			p.Kind = DeallocateAll
			p.End = l.i
			return finish(&l, p, l.next())
		}
		if kind == Prepare && eqFold(t.text, "transaction") {
			return PreparedStatement{} // two-phase commit
		}
		p.Name = foldName(t.text)
	case kQuoted:
		if t.uni || len(t.text) == 0 {
			return PreparedStatement{}
		}
		p.NameStart, p.NameEnd = l.i-len(t.text)-2, l.i
		p.Name = strings.ReplaceAll(t.text, `""`, `"`)
	default:
		return PreparedStatement{}
	}
	if len(p.Name) > maxNameLen {
		return PreparedStatement{}
	}
	p.End = l.i
	t = l.next()
	switch kind {
	case Prepare:
		if t.kind == kOpen {
			if !skipParens(&l) {
				return PreparedStatement{}
			}
			t = l.next()
		}
		if t.kind != kWord || !eqFold(t.text, "as") {
			return PreparedStatement{}
		}
		// The statement: anything up to the end or a ';' outside
		// parentheses, not empty.
		depth, body := 0, false
		for {
			t = l.next()
			switch t.kind {
			case kEnd:
				if l.cut || !body || depth != 0 {
					return PreparedStatement{}
				}
				return p
			case kSemi:
				if depth == 0 {
					if !body {
						return PreparedStatement{}
					}
					return finish(&l, p, t)
				}
			case kOpen:
				depth++
			case kClose:
				depth--
			case kOpaque:
				return PreparedStatement{} // as Scan: a name nobody can read
			}
			body = true
			p.End = l.i
		}
	case Execute:
		if t.kind == kOpen {
			if !skipParens(&l) {
				return PreparedStatement{}
			}
			p.End = l.i
			t = l.next()
		}
	}
	return finish(&l, p, t)
}

// finish accepts p when t, the token after the statement, is the end of
// the text or semicolons followed by the end.
func finish(l *lexer, p PreparedStatement, t token) PreparedStatement {
	for t.kind == kSemi {
		t = l.next()
	}
	if t.kind != kEnd || l.cut {
		return PreparedStatement{}
	}
	return p
}

// skipParens consumes tokens up to the ')' that closes an already
// consumed '(' and reports whether it was found; a ';' inside is refused.
func skipParens(l *lexer) bool {
	for depth := 1; depth > 0; {
		switch l.next().kind {
		case kEnd, kSemi:
			return false
		case kOpen:
			depth++
		case kClose:
			depth--
		}
	}
	return true
}

// foldName lower-cases ASCII letters, as PostgreSQL folds unquoted
// identifiers; a name already in lower case is returned as it is.
func foldName(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// LeadsPrepared reports cheaply whether query's first word is PREPARE,
// EXECUTE or DEALLOCATE, so that SplitPrepared runs only for those.
func LeadsPrepared(query string) bool {
	if len(query) > 0 && class[query[0]]&cStart != 0 {
		switch query[0] | 0x20 {
		case 'p', 'e', 'd':
		default:
			return false // SELECT, INSERT, BEGIN...: without lexing a token
		}
	}
	l := lexer{s: query}
	t := l.next()
	if t.kind != kWord {
		return false
	}
	switch len(t.text) {
	case 7:
		return eqFold(t.text, "prepare") || eqFold(t.text, "execute")
	case 10:
		return eqFold(t.text, "deallocate")
	}
	return false
}
