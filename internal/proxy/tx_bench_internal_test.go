package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/wire"
)

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
	a := newFuzzAttachment(config.PoolTransaction, 10)
	chunk := benchAnswer()
	var f downFilter
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		a.asks++
		res, err := f.filter(a, chunk)
		if err != nil || !res.endsWithZ {
			b.Fatal(err)
		}
	}
}

func BenchmarkTxUpRewrite(b *testing.B) {
	a := newFuzzAttachment(config.PoolTransaction, 10)
	c := a.client
	c.up = wire.Framer{MaxLen: 1 << 30}
	var prep []byte
	prep, _ = (&pgproto3.Parse{Name: "s1", Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1"}).Encode(prep)
	var batch []byte
	batch, _ = (&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("42")}}).Encode(batch)
	batch, _ = (&pgproto3.Describe{ObjectType: 'P'}).Encode(batch)
	batch, _ = (&pgproto3.Execute{}).Encode(batch)
	batch, _ = (&pgproto3.Sync{}).Encode(batch)
	query, _ := (&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 42"}).Encode(nil)
	c.cur, c.out = a, nil
	if err := c.up.Feed(prep, c); err != nil {
		b.Fatal(err)
	}
	c.stmts["s1"].srv = "sluice_x"
	a.tx.Statements.Add("sluice_x")
	a.queue, a.asks = nil, 0
	a.queued.Store(0)
	out := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		c.cur, c.out = a, out[:0]
		if err := c.up.Feed(batch, c); err != nil {
			b.Fatal(err)
		}
		if err := c.up.Feed(query, c); err != nil {
			b.Fatal(err)
		}
		out = c.out
	}
}
