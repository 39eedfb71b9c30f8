package txcore

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// The core's share of a transaction's cost, without sockets: one op of
// BenchmarkTxDownFilter is one answer of 100 rows through the filter;
// one op of BenchmarkTxUpRewrite is an extended-protocol execution of a
// prepared statement plus a simple Query through the framer and the
// client's rewriting. Both must stay at 0 allocs/op.

func benchAnswer() []byte {
	var b []byte
	b, _ = (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 25}}}).Encode(b)
	for range 100 {
		b, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("a row of text, about sixty bytes long, as pgbench -S returns")}}).Encode(b)
	}
	b, _ = (&pgproto3.CommandComplete{CommandTag: []byte("SELECT 100")}).Encode(b)
	b, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(b)
	return b
}

func BenchmarkTxDownFilter(b *testing.B) {
	a, mu := newFuzzBooks(false, 10)
	chunk := benchAnswer()
	var f DownFilter
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		a.Asks++
		res, err := f.Filter(a, mu, chunk)
		if err != nil || !res.EndsWithZ {
			b.Fatal(err)
		}
	}
}

func sha256Name(searchPath string, query, params []byte) string {
	h := sha256.New()
	h.Write([]byte(searchPath))
	h.Write([]byte{0})
	h.Write(query)
	h.Write([]byte{0})
	h.Write(params)
	var sum [sha256.Size]byte
	return "sluice_" + hex.EncodeToString(h.Sum(sum[:0])[:12])
}

func BenchmarkTxUpRewrite(b *testing.B) {
	a, _ := newFuzzBooks(false, 10)
	c := a.Client
	up := wire.Framer{MaxLen: 1 << 30}
	var prep []byte
	prep, _ = (&pgproto3.Parse{Name: "s1", Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1"}).Encode(prep)
	var batch []byte
	batch, _ = (&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("42")}}).Encode(batch)
	batch, _ = (&pgproto3.Describe{ObjectType: 'P'}).Encode(batch)
	batch, _ = (&pgproto3.Execute{}).Encode(batch)
	batch, _ = (&pgproto3.Sync{}).Encode(batch)
	query, _ := (&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 42"}).Encode(nil)
	c.Cur, c.Out = a, nil
	if err := up.Feed(prep, c); err != nil {
		b.Fatal(err)
	}
	a.queue, a.Asks = nil, 0
	a.queued.Store(0)
	out := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		c.Cur, c.Out = a, out[:0]
		if err := up.Feed(batch, c); err != nil {
			b.Fatal(err)
		}
		if err := up.Feed(query, c); err != nil {
			b.Fatal(err)
		}
		out = c.Out
	}
}
