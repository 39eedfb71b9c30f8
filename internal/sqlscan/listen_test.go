package sqlscan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func listenOps(q string) []ListenOp {
	var ops []ListenOp
	ListenOps(q, func(op ListenOp) { ops = append(ops, op) })
	return ops
}

func TestListenOps(t *testing.T) {
	long := strings.Repeat("a", 70)
	accent := strings.Repeat("a", 62) + "é" // é straddles byte 63: cut before it
	for _, c := range []struct {
		q    string
		want []ListenOp
	}{
		{"SELECT 1", nil},
		{"LISTEN Chan", []ListenOp{{Listen, "chan", true}}},
		{`listen "Chan"`, []ListenOp{{Listen, "Chan", true}}},
		{`UNLISTEN "a""b"`, []ListenOp{{Unlisten, `a"b`, true}}},
		{"UNLISTEN *", []ListenOp{{UnlistenAll, "", true}}},
		{"unlisten *;", []ListenOp{{UnlistenAll, "", true}}},
		{"DISCARD ALL", []ListenOp{{UnlistenAll, "", true}}},
		{"DISCARD TEMP", nil},
		{`UNLISTEN U&"\0061"`, []ListenOp{{Unlisten, "", false}}},
		{"UNLISTEN " + long, []ListenOp{{Unlisten, long[:63], true}}},
		{"LISTEN " + accent, []ListenOp{{Listen, accent[:62], true}}},
		{"LISTEN ÉtÉ", []ListenOp{{Listen, "ÉtÉ", true}}}, // only ASCII folds
		{"SELECT 1; LISTEN a; UNLISTEN b; /* c */ UNLISTEN *", []ListenOp{{Listen, "a", true}, {Unlisten, "b", true}, {UnlistenAll, "", true}}},
		{"SELECT 'UNLISTEN a'; -- UNLISTEN b\n SELECT unlisten FROM t", nil},
		{"UNLISTEN; LISTEN a", []ListenOp{{Listen, "a", true}}},
		{"SELECT (1; UNLISTEN a)", nil},
		{"BEGIN; UNLISTEN a; COMMIT", []ListenOp{{Unlisten, "a", true}}},
	} {
		require.Equal(t, c.want, listenOps(c.q), c.q)
		if c.want != nil {
			require.NotZero(t, Scan(c.q)&Listens, "Scan flags %q", c.q)
		}
	}
}

// FuzzListenOps checks that ListenOps never panics or hangs, returns
// names PostgreSQL could have (at most 63 bytes, valid where the text
// was) and finds something only where Scan flags Listens.
func FuzzListenOps(f *testing.F) {
	for _, q := range []string{"LISTEN a", `UNLISTEN "x""y"`, "UNLISTEN *", "DISCARD ALL", `LISTEN U&"\0061"`,
		"SELECT 1; UNLISTEN b;", "LISTEN " + strings.Repeat("é", 40)} {
		f.Add(q)
	}
	for _, c := range cases {
		f.Add(c.q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		ops := listenOps(q)
		require.Equal(t, ops, listenOps(q))
		if len(ops) > 0 {
			require.NotZero(t, Scan(q)&Listens, "ops %v without Listens in %q", ops, q)
		}
		for _, op := range ops {
			require.LessOrEqual(t, len(op.Channel), maxIdentifier)
			require.Contains(t, []ListenKind{Listen, Unlisten, UnlistenAll}, op.Kind)
			if op.Kind == UnlistenAll {
				require.Empty(t, op.Channel)
			}
		}
	})
}
