package sqlscan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var preparedCases = []struct {
	q    string
	kind PreparedKind
	name string
	// written is the name as written (q[NameStart:NameEnd]); rest is
	// q[NameEnd:End].
	written, rest string
}{
	{"PREPARE p AS SELECT 1", Prepare, "p", "p", " AS SELECT 1"},
	{"prepare P (int, text) as select $1, $2;", Prepare, "p", "P", " (int, text) as select $1, $2"},
	{"PREPARE \"My\"\"Stmt\" AS SELECT 1 ; -- done", Prepare, `My"Stmt`, `"My""Stmt"`, " AS SELECT 1"},
	{"/* c */ PREPARE p(int) AS SELECT (SELECT $1); ;", Prepare, "p", "p", "(int) AS SELECT (SELECT $1)"},
	{"PREPARE p AS SELECT ';' -- x", Prepare, "p", "p", " AS SELECT ';'"},
	{"PREPARE p AS SELECT\n", Prepare, "p", "p", " AS SELECT"},
	{"EXECUTE p", Execute, "p", "p", ""},
	{"execute P(1, 'a;b', (SELECT 2));", Execute, "p", "P", "(1, 'a;b', (SELECT 2))"},
	{"EXECUTE \"P\" ( 1 )", Execute, "P", `"P"`, " ( 1 )"},
	{"DEALLOCATE p", Deallocate, "p", "p", ""},
	{"DEALLOCATE PREPARE p;", Deallocate, "p", "p", ""},
	{"deallocate prepare", Deallocate, "prepare", "prepare", ""},
	{`DEALLOCATE "all"`, Deallocate, "all", `"all"`, ""},
	{"DEALLOCATE ALL", DeallocateAll, "", "ALL", ""},
	{"DEALLOCATE PREPARE all ;", DeallocateAll, "", "all", ""},

	{"PREPARE\"q\"AS SELECT", Prepare, "q", `"q"`, "AS SELECT"},

	// Declined: left as any other text.
	{"", NotPrepared, "", "", ""},
	{"SELECT 1", NotPrepared, "", "", ""},
	{"PREPARE p AS SELECT 1; EXECUTE p", NotPrepared, "", "", ""},
	{"EXECUTE p; SELECT 1", NotPrepared, "", "", ""},
	{"PREPARE TRANSACTION 'x'", NotPrepared, "", "", ""},
	{"PREPARE p SELECT 1", NotPrepared, "", "", ""},
	{"PREPARE p AS", NotPrepared, "", "", ""},
	{"PREPARE p AS ;", NotPrepared, "", "", ""},
	{"PREPARE p AS SELECT 'open", NotPrepared, "", "", ""},
	{"PREPARE p (int AS SELECT 1", NotPrepared, "", "", ""},
	{"PREPARE U&\"\\0070\" AS SELECT 1", NotPrepared, "", "", ""},
	{`PREPARE "" AS SELECT 1`, NotPrepared, "", "", ""},
	{"EXECUTE p 1", NotPrepared, "", "", ""},
	{"EXECUTE p(1", NotPrepared, "", "", ""},
	{"EXECUTE (1)", NotPrepared, "", "", ""},
	{"DEALLOCATE", NotPrepared, "", "", ""},
	{"DEALLOCATE p q", NotPrepared, "", "", ""},
	{"EXECUTE p /* open", NotPrepared, "", "", ""},
	{"EXECUTE a234567890123456789012345678901234567890123456789012345678901234", NotPrepared, "", "", ""},
	{"PREPARE p AS SELECT U&\"a\\0062\"()", NotPrepared, "", "", ""},
}

func TestSplitPrepared(t *testing.T) {
	for _, c := range preparedCases {
		p := SplitPrepared(c.q)
		require.Equal(t, c.kind, p.Kind, "%q", c.q)
		if c.kind == NotPrepared {
			continue
		}
		require.True(t, LeadsPrepared(c.q), "%q", c.q)
		require.Equal(t, c.name, p.Name, "%q", c.q)
		require.Equal(t, c.written, c.q[p.NameStart:p.NameEnd], "%q", c.q)
		if c.kind != DeallocateAll {
			require.Equal(t, c.rest, c.q[p.NameEnd:p.End], "%q", c.q)
		}
	}
}

func TestLeadsPrepared(t *testing.T) {
	for q, want := range map[string]bool{
		"PREPARE p AS SELECT 1": true, " execute p": true, "DeAllocate all": true, "/**/EXECUTE": true,
		"SELECT 1": false, "prepared": false, "": false, "'execute'": false, "EXECUTED": false,
	} {
		require.Equal(t, want, LeadsPrepared(q), "%q", q)
	}
}

func TestSplitPreparedAllocatesOnlyToFold(t *testing.T) {
	require.Zero(t, testing.AllocsPerRun(100, func() { SplitPrepared("EXECUTE stmt_1(1, 2)") }))
	require.Zero(t, testing.AllocsPerRun(100, func() { LeadsPrepared("SELECT 1") }))
}

// FuzzSplitPrepared checks that SplitPrepared never panics and that what
// it accepts can be rewritten as the pooler does: the offsets are in
// order, the name is there as written, and the text with another name in
// its place (unless DEALLOCATE ALL) splits again into the same command,
// with the new name and the same rest.
func FuzzSplitPrepared(f *testing.F) {
	for _, c := range preparedCases {
		f.Add(c.q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p := SplitPrepared(q)
		require.Equal(t, p, SplitPrepared(q))
		if p.Kind == NotPrepared {
			require.Zero(t, p)
			return
		}
		require.True(t, LeadsPrepared(q), "%q", q)
		require.True(t, 0 < p.NameStart && p.NameStart < p.NameEnd && p.NameEnd <= p.End && p.End <= len(q), "%q: %+v", q, p)
		if p.Kind == DeallocateAll {
			require.Empty(t, p.Name)
			return
		}
		require.NotEmpty(t, p.Name)
		require.LessOrEqual(t, len(p.Name), maxNameLen)
		const srv = "sluice_0123456789abcdef01234567"
		// A quoted name may touch the words around it ("PREPARE\"x\"AS"):
		// the pooler puts spaces around the name it writes.
		r := q[:p.NameStart] + " " + srv + " " + q[p.NameEnd:]
		p2 := SplitPrepared(r)
		require.Equal(t, p.Kind, p2.Kind, "%q -> %q", q, r)
		require.Equal(t, srv, p2.Name)
		require.Equal(t, strings.TrimSpace(q[p.NameEnd:p.End]), strings.TrimSpace(r[p2.NameEnd:p2.End]))
		if p.Kind == Prepare {
			// What the pooler prepares ahead of an EXECUTE: the statement
			// up to End, then a line break and ';' to close any comment.
			inj := "PREPARE " + srv + " " + q[p.NameEnd:p.End] + "\n;EXECUTE " + srv
			require.Equal(t, NotPrepared, SplitPrepared(inj).Kind, "%q", inj)
			require.True(t, complete(inj), "%q", inj)
		}
	})
}
