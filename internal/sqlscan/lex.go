package sqlscan

import "strings"

// kind is the class of a token. Classification only needs names and the
// three punctuation marks that delimit statements and calls; every literal,
// number, parameter and operator is just "other".
type kind uint8

const (
	kEnd    kind = iota // end of text, or an unterminated literal or comment
	kWord               // unquoted identifier or keyword
	kQuoted             // "quoted identifier": never a keyword
	kOpaque             // U&"..." with escapes: its name is unknown
	kOpen               // (
	kClose              // )
	kSemi               // ;
	kOther              // literal, number, parameter, operator
)

type token struct {
	kind kind
	// uni marks a U&"..." identifier: a UESCAPE clause after it can make
	// any text spell any name.
	uni bool
	// text is the name for kWord (as written) and kQuoted (the raw contents,
	// doubled quotes left as they are).
	text string
}

// lexer splits a query text into tokens following PostgreSQL's scan.l
// closely enough for Scan: it skips comments (which nest) and whitespace,
// and returns each literal as a single token so that nothing inside it is
// ever seen as SQL. It never allocates: token texts are substrings.
type lexer struct {
	s string
	i int
	// cut is set when the text ends inside a literal, quoted identifier or
	// block comment; lexing stops there.
	cut bool
}

// Character classes, looked up in one table: Scan runs over every byte of
// every query, and a load is cheaper than a chain of comparisons.
const (
	cSpace = 1 << iota // scan.l's space: [ \t\n\r\f\v]
	cStart             // ident_start: letters, '_', any byte of a multi-byte UTF-8 character
	cCont              // ident_cont: ident_start, digits and '$' (so "a$$b" is one identifier)
	cDigit
)

var class = func() (t [256]uint8) {
	for _, c := range []byte(" \t\n\r\f\v") {
		t[c] = cSpace
	}
	for c := 0; c < 256; c++ {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80 {
			t[c] = cStart | cCont
		}
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit | cCont
	}
	t['$'] = cCont
	return t
}()

// next returns the next token; after kEnd it keeps returning kEnd. Spaces
// and words, by far the most common bytes, are tested first.
func (l *lexer) next() token {
	s, i := l.s, l.i
	for i < len(s) {
		c := s[i]
		cl := class[c]
		if cl&cSpace != 0 {
			i++
			continue
		}
		if cl&cStart != 0 {
			l.i = i
			return l.word()
		}
		switch {
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i += 2; i < len(s) && s[i] != '\n' && s[i] != '\r'; i++ {
			}
			continue
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			if i = blockComment(s, i); i < 0 {
				return l.stop()
			}
			continue
		}
		l.i = i + 1
		switch c {
		case '\'':
			return l.literal('\'', true, false)
		case '"':
			return l.quotedIdent(false)
		case '$':
			l.i = i
			return l.dollar()
		case '(':
			return token{kind: kOpen}
		case ')':
			return token{kind: kClose}
		case ';':
			return token{kind: kSemi}
		}
		if cl&cDigit != 0 {
			// Digits only: a letter after a number starts a new token, as in
			// PostgreSQL before 15 (later versions reject the text).
			for i++; i < len(s) && (class[s[i]]&cDigit != 0 || s[i] == '.' || s[i] == '_'); i++ {
			}
			l.i = i
		}
		return token{kind: kOther}
	}
	l.i = i
	return token{kind: kEnd}
}

// stop ends lexing at an unterminated literal or comment: PostgreSQL would
// reject the text, and guessing where it was meant to end could only
// produce nonsense.
func (l *lexer) stop() token {
	l.i = len(l.s)
	l.cut = true
	return token{kind: kEnd}
}

// blockComment skips the /* ... */ comment at s[i:] and returns the index
// after it, or -1 if it is unterminated. Comments nest, as the SQL standard
// says and PostgreSQL does (unlike C).
func blockComment(s string, i int) int {
	depth := 0
	for i < len(s)-1 {
		switch {
		case s[i] == '/' && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return -1
}

// literal skips the body of a string literal whose opening quote is already
// consumed. doubled: a quote written twice stands for one; backslash: a
// backslash escapes the next byte (E'...' strings).
func (l *lexer) literal(q byte, doubled, backslash bool) token {
	s := l.s
	for i := l.i; i < len(s); i++ {
		if !backslash {
			// No escapes: jump straight to the next quote.
			j := strings.IndexByte(s[i:], q)
			if j < 0 {
				break
			}
			i += j
		}
		switch s[i] {
		case '\\':
			if backslash {
				i++
			}
		case q:
			if doubled && i+1 < len(s) && s[i+1] == q {
				i++
				continue
			}
			l.i = i + 1
			return token{kind: kOther}
		}
	}
	return l.stop()
}

// quotedIdent lexes a "..." identifier whose opening quote is consumed.
func (l *lexer) quotedIdent(uni bool) token {
	start := l.i
	if t := l.literal('"', true, false); t.kind == kEnd {
		return t
	}
	text := l.s[start : l.i-1]
	if uni && strings.IndexByte(text, '\\') >= 0 {
		return token{kind: kOpaque, uni: true}
	}
	return token{kind: kQuoted, uni: uni, text: text}
}

// word lexes an identifier or keyword, or a literal with a one-letter
// prefix: E'...' (backslash escapes), B'...' and X'...' (no doubling),
// U&'...' and U&"...". Longest match, as in scan.l: "xe'a'" is the
// identifier xe followed by a plain string.
func (l *lexer) word() token {
	s := l.s
	start, i := l.i, l.i+1
	for i < len(s) && class[s[i]]&cCont != 0 {
		i++
	}
	l.i = i // a local index keeps the loop in registers
	if l.i-start == 1 && l.i < len(s) {
		switch s[start] | 0x20 {
		case 'e':
			if s[l.i] == '\'' {
				l.i++
				return l.literal('\'', true, true)
			}
		case 'b', 'x':
			if s[l.i] == '\'' {
				l.i++
				return l.literal('\'', false, false)
			}
		case 'u':
			if s[l.i] == '&' && l.i+1 < len(s) {
				switch s[l.i+1] {
				case '\'':
					l.i += 2
					return l.literal('\'', true, false)
				case '"':
					l.i += 2
					return l.quotedIdent(true)
				}
			}
		}
	}
	return token{kind: kWord, text: s[start:l.i]}
}

// dollar lexes what starts with '$': a parameter ($1), a dollar-quoted
// string ($$...$$, $tag$...$tag$; the tag has no '$' and does not start with
// a digit) or, failing both, a lone '$' (scan.l's dolqfailed).
func (l *lexer) dollar() token {
	s := l.s
	j := l.i + 1
	if j < len(s) && class[s[j]]&cDigit != 0 {
		for j < len(s) && class[s[j]]&cDigit != 0 {
			j++
		}
		l.i = j
		return token{kind: kOther}
	}
	if j < len(s) && class[s[j]]&cStart != 0 {
		for j < len(s) && class[s[j]]&(cStart|cDigit) != 0 {
			j++
		}
	}
	if j >= len(s) || s[j] != '$' {
		l.i++
		return token{kind: kOther}
	}
	delim := s[l.i : j+1]
	end := strings.Index(s[j+1:], delim)
	if end < 0 {
		return l.stop()
	}
	l.i = j + 1 + end + len(delim)
	return token{kind: kOther}
}
