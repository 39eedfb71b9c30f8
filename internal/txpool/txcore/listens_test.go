package txcore

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// An UNLISTEN counts only if its transaction committed, as in
// PostgreSQL: the requests go up through the framer and Client, the
// server's answers (as PostgreSQL 15 sends them) come down through
// DownFilter, whole or a byte at a time, and TakeUnlistens at the
// detach returns what the fan-out must drop.
func TestUnlistenFollowsItsTransaction(t *testing.T) {
	cc := func(tag string) pgproto3.Message { return &pgproto3.CommandComplete{CommandTag: []byte(tag)} }
	z := func(s byte) pgproto3.Message { return &pgproto3.ReadyForQuery{TxStatus: s} }
	fail := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "22012", Message: "division by zero"}
	type step struct {
		query  string
		answer []pgproto3.Message
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string // channels unlistened; "*" for UNLISTEN *
	}{
		{"autocommit", []step{{"UNLISTEN a", []pgproto3.Message{cc("UNLISTEN"), z('I')}}}, []string{"a"}},
		{"committed block", []step{
			{"BEGIN", []pgproto3.Message{cc("BEGIN"), z('T')}},
			{"UNLISTEN a", []pgproto3.Message{cc("UNLISTEN"), z('T')}},
			{"COMMIT", []pgproto3.Message{cc("COMMIT"), z('I')}},
		}, []string{"a"}},
		{"rolled back block", []step{
			{"BEGIN", []pgproto3.Message{cc("BEGIN"), z('T')}},
			{"UNLISTEN a", []pgproto3.Message{cc("UNLISTEN"), z('T')}},
			{"ROLLBACK", []pgproto3.Message{cc("ROLLBACK"), z('I')}},
		}, nil},
		{"failed block committed", []step{
			{"BEGIN", []pgproto3.Message{cc("BEGIN"), z('T')}},
			{"UNLISTEN *", []pgproto3.Message{cc("UNLISTEN"), z('T')}},
			{"SELECT 1/0", []pgproto3.Message{fail, z('E')}},
			{"COMMIT", []pgproto3.Message{cc("ROLLBACK"), z('I')}},
		}, nil},
		{"failed implicit transaction", []step{
			{"UNLISTEN a; SELECT 1/0", []pgproto3.Message{cc("UNLISTEN"), fail, z('I')}},
		}, nil},
		{"failed commit", []step{
			{"BEGIN", []pgproto3.Message{cc("BEGIN"), z('T')}},
			{"UNLISTEN a", []pgproto3.Message{cc("UNLISTEN"), z('T')}},
			{"COMMIT", []pgproto3.Message{&pgproto3.ErrorResponse{Severity: "ERROR", Code: "23505", Message: "deferred"}, z('I')}},
		}, nil},
		{"COPY's tag is not COMMIT", []step{
			{"BEGIN; UNLISTEN a", []pgproto3.Message{cc("BEGIN"), cc("UNLISTEN"), z('T')}},
			{"COPY t TO STDOUT", []pgproto3.Message{&pgproto3.CopyOutResponse{}, &pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{}, cc("COPY 1"), z('T')}},
			{"ROLLBACK", []pgproto3.Message{cc("ROLLBACK"), z('I')}},
		}, nil},
		{"committed, then a failed implicit transaction in the same Query", []step{
			{"BEGIN; UNLISTEN a; COMMIT; SELECT 1/0", []pgproto3.Message{cc("BEGIN"), cc("UNLISTEN"), cc("COMMIT"), fail, z('I')}},
		}, []string{"a"}},
		{"several transactions in one Query (documented: all follow the rollback)", []step{
			{"BEGIN; UNLISTEN a; ROLLBACK; UNLISTEN b", []pgproto3.Message{cc("BEGIN"), cc("UNLISTEN"), cc("ROLLBACK"), cc("UNLISTEN"), z('I')}},
		}, nil},
		{"rolled back to a savepoint (not followed: applies at commit)", []step{
			{"BEGIN; SAVEPOINT s; UNLISTEN a", []pgproto3.Message{cc("BEGIN"), cc("SAVEPOINT"), cc("UNLISTEN"), z('T')}},
			{"ROLLBACK TO s", []pgproto3.Message{cc("ROLLBACK"), z('T')}},
			{"COMMIT", []pgproto3.Message{cc("COMMIT"), z('I')}},
		}, []string{"a"}},
		{"error then rolled back to a savepoint", []step{
			{"BEGIN; UNLISTEN a; SAVEPOINT s", []pgproto3.Message{cc("BEGIN"), cc("UNLISTEN"), cc("SAVEPOINT"), z('T')}},
			{"SELECT 1/0", []pgproto3.Message{fail, z('E')}},
			{"ROLLBACK TO s", []pgproto3.Message{cc("ROLLBACK"), z('T')}},
			{"COMMIT", []pgproto3.Message{cc("COMMIT"), z('I')}},
		}, []string{"a"}},
	} {
		for _, bytewise := range []bool{false, true} {
			b, mu := newFuzzBooks(false, 10)
			up := wire.Framer{MaxLen: 1 << 20}
			var f DownFilter
			for _, s := range tc.steps {
				feed(t, &up, b.Client, b, encode(t, &pgproto3.Query{String: s.query}))
				answer := encode(t, s.answer...)
				var out []byte
				for len(answer) > 0 {
					n := len(answer)
					if bytewise {
						n = 1
					}
					res, err := f.Filter(b, mu, answer[:n])
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, res.Out...)
					answer = answer[n:]
				}
				if want := encode(t, s.answer...); string(out) != string(want) {
					t.Fatalf("%s: the client got %q, want %q", tc.name, out, want)
				}
			}
			u := b.TakeUnlistens()
			got := slices.Clone(u.Channels)
			if u.All {
				got = append(got, "*")
			}
			if !slices.Equal(got, tc.want) || b.unlistenOpen.Load() || len(b.txUnlistens) > 0 {
				t.Errorf("%s (a byte at a time %v): unlistened %q, want %q (still waiting: %v)", tc.name, bytewise, got, tc.want, b.txUnlistens)
			}
		}
	}
}

// Pipelined requests: an UNLISTEN sent after a block that will roll
// back is not dropped with it, and one sent inside it is.
func TestUnlistenPipelined(t *testing.T) {
	b, mu := newFuzzBooks(false, 10)
	up := wire.Framer{MaxLen: 1 << 20}
	feed(t, &up, b.Client, b, encode(t, &pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "UNLISTEN a"},
		&pgproto3.Query{String: "ROLLBACK"}, &pgproto3.Query{String: "UNLISTEN b"}))
	var f DownFilter
	cc := func(tag string) pgproto3.Message { return &pgproto3.CommandComplete{CommandTag: []byte(tag)} }
	if _, err := f.Filter(b, mu, encode(t, cc("BEGIN"), &pgproto3.ReadyForQuery{TxStatus: 'T'}, cc("UNLISTEN"), &pgproto3.ReadyForQuery{TxStatus: 'T'},
		cc("ROLLBACK"), &pgproto3.ReadyForQuery{TxStatus: 'I'}, cc("UNLISTEN"), &pgproto3.ReadyForQuery{TxStatus: 'I'})); err != nil {
		t.Fatal(err)
	}
	if u := b.TakeUnlistens(); u.All || !slices.Equal(u.Channels, []string{"b"}) {
		t.Fatalf("unlistened %+v, want b only", u)
	}
}
