package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// complete reports whether q ends outside any literal, quoted identifier or
// block comment.
func complete(q string) bool {
	l := lexer{s: q}
	for l.next().kind != kEnd {
	}
	return !l.cut
}

// FuzzScan checks that Scan never panics or hangs, is deterministic, sets
// only known flags, and that statement boundaries behave: a statement
// without effects in front changes nothing (the text after ';' leads a
// statement just like the start of the text), and a harmless statement
// after a complete text neither adds nor removes a flag (nothing Scan
// decides waits for a token it might never see).
func FuzzScan(f *testing.F) {
	for _, c := range cases {
		f.Add(c.q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		e := Scan(q)
		require.Equal(t, e, Scan(q))
		require.Zero(t, e&^all, "unknown bits in %v", e)
		require.Equal(t, e, Scan("SELECT 1;\n"+q), "effect-free statement in front of %q", q)
		if complete(q) {
			require.Equal(t, e, Scan(q+" ; SELECT 1"), "statement after %q", q)
		}
	})
}
