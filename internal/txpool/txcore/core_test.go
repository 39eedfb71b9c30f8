package txcore

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// The core without a socket: a client's extended-protocol batch goes up
// through the framer and Client, the server's answers come down through
// DownFilter, and the client sees exactly what a direct connection would
// have sent, while Books records the round.

func encode(t *testing.T, msgs ...pgproto3.Message) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// feed runs chunk through a framer into c for the attachment b, as the
// client's loop does, and returns what the server receives.
func feed(t *testing.T, up *wire.Framer, c *Client, b *Books, chunk []byte) []byte {
	t.Helper()
	c.Cur, c.Out = b, nil
	if err := up.Feed(chunk, c); err != nil {
		t.Fatal(err)
	}
	out := c.Out
	c.Cur, c.Out = nil, nil
	return out
}

func TestCorePreparedStatementRoundTrip(t *testing.T) {
	b, mu := newFuzzBooks(false, 10)
	c := b.Client
	up := wire.Framer{MaxLen: 1 << 20}
	const query = "SELECT $1::int"
	srv := sha256Name("", []byte(query), []byte{0, 0})
	got := feed(t, &up, c, b, encode(t,
		&pgproto3.Parse{Name: "s1", Query: query},
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Execute{}, &pgproto3.Sync{}))
	// The server gets the statement under its server name, made safe by a
	// Close first; the client's name appears nowhere.
	want := encode(t, &pgproto3.Close{ObjectType: 'S', Name: srv}, &pgproto3.Parse{Name: srv, Query: query},
		&pgproto3.Bind{PreparedStatement: srv, Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !bytes.Equal(got, want) {
		t.Fatalf("to the server:\n%q\nwant\n%q", got, want)
	}
	if b.Asks != 1 || len(b.queue) != 2 || !b.Busy(false) {
		t.Fatalf("asks %d, queued %d, busy %v: want 1, 2 (sluice's Close, the client's Parse), busy", b.Asks, len(b.queue), b.Busy(false))
	}
	// The server answers both; the client must see only its Parse's.
	answer := encode(t, &pgproto3.CloseComplete{}, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	var f DownFilter
	res, err := f.Filter(b, mu, answer)
	if err != nil {
		t.Fatal(err)
	}
	wantDown := encode(t, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if !bytes.Equal(res.Out, wantDown) || !res.EndsWithZ || res.Status != 'I' || res.Unexpected != 0 {
		t.Fatalf("to the client: %q (endsWithZ %v, status %q, unexpected %d), want %q", res.Out, res.EndsWithZ, res.Status, res.Unexpected, wantDown)
	}
	if b.Busy(false) || !b.Idle(false) || !b.Parsed.has(srv) || !b.Statements.Has(srv) {
		t.Fatalf("after ReadyForQuery: busy %v, idle %v, known to parse %v, cached %v", b.Busy(false), b.Idle(false), b.Parsed.has(srv), b.Statements.Has(srv))
	}

	// Another client of the pool preparing the same text outside a
	// transaction is answered without a server: LocalParse.
	other := &Client{ID: 2}
	chunk := encode(t, &pgproto3.Parse{Name: "mine", Query: query}, &pgproto3.Sync{})
	l, ok := other.LocalParse(chunk, b.Parsed, sha256Name)
	if !ok {
		t.Fatal("LocalParse refused a statement the pool knows to parse")
	}
	other.AddLocal(l)
	if st := other.stmts["mine"]; st == nil || st.srv != srv || string(st.query) != query {
		t.Fatalf("local statement %+v, want server name %s", st, srv)
	}
	// A second Parse of the name, a session effect, or text the pool has
	// not seen parse goes to the server.
	for _, m := range []*pgproto3.Parse{{Name: "mine", Query: query}, {Name: "x", Query: "SET search_path = a"}, {Name: "y", Query: "SELECT 2"}} {
		if _, ok := other.LocalParse(encode(t, m, &pgproto3.Sync{}), b.Parsed, sha256Name); ok {
			t.Errorf("LocalParse answered %q locally", m.Query)
		}
	}
}

// A client's Close of a statement keeps the server's for the next
// client: the server is sent a Close of a name sluice never prepares,
// whose CloseComplete passes to the client as the answer to its Close.
func TestCoreCloseKeepsServerStatement(t *testing.T) {
	b, mu := newFuzzBooks(false, 10)
	c := b.Client
	up := wire.Framer{MaxLen: 1 << 20}
	feed(t, &up, c, b, encode(t, &pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Sync{}))
	var f DownFilter
	if _, err := f.Filter(b, mu, encode(t, &pgproto3.CloseComplete{}, &pgproto3.ParseComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'I'})); err != nil {
		t.Fatal(err)
	}
	got := feed(t, &up, c, b, encode(t, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{}))
	want := encode(t, &pgproto3.Close{ObjectType: 'S', Name: noopStatement}, &pgproto3.Sync{})
	if !bytes.Equal(got, want) {
		t.Fatalf("to the server: %q, want %q", got, want)
	}
	res, err := f.Filter(b, mu, encode(t, &pgproto3.CloseComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'I'}))
	if err != nil {
		t.Fatal(err)
	}
	if want := encode(t, &pgproto3.CloseComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'I'}); !bytes.Equal(res.Out, want) {
		t.Fatalf("to the client: %q, want %q", res.Out, want)
	}
	if _, kept := c.stmts["s1"]; kept || !b.Statements.Has(sha256Name("", []byte("SELECT 1"), []byte{0, 0})) {
		t.Fatalf("client statement kept %v; the server's must stay cached", kept)
	}
}
