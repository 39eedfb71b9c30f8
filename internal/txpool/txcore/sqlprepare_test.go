package txcore

import (
	"bytes"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend/stmtcache"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// down runs server messages through a fresh filter for b and returns
// what the client receives.
func down(t *testing.T, b *Books, mu *sync.Mutex, msgs ...pgproto3.Message) []byte {
	t.Helper()
	var f DownFilter
	res, err := f.Filter(b, mu, encode(t, msgs...))
	require.NoError(t, err)
	return res.Out
}

// SQL-level PREPARE and EXECUTE, message by message: the PREPARE goes
// under the server name after a Close; on a connection without the
// statement an EXECUTE prepares it in the same Query, and the client
// sees neither that PREPARE's CommandComplete nor the Closes' answers.
func TestCoreSQLPrepareAndExecute(t *testing.T) {
	b, mu := newFuzzBooks(false, 10)
	c := b.Client
	up := wire.Framer{MaxLen: 1 << 20}
	const rest = " (int) AS SELECT $1 * 2"
	srv := sha256Name("", []byte(rest), sqlParams)

	got := feed(t, &up, c, b, encode(t, &pgproto3.Query{String: "PREPARE Twice" + rest + ";"}))
	want := encode(t, &pgproto3.Close{ObjectType: 'S', Name: srv}, &pgproto3.Query{String: "PREPARE  " + srv + " " + rest + ";"})
	require.Equal(t, want, got)
	out := down(t, b, mu, &pgproto3.CloseComplete{}, &pgproto3.CommandComplete{CommandTag: []byte("PREPARE")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	require.Equal(t, encode(t, &pgproto3.CommandComplete{CommandTag: []byte("PREPARE")}, &pgproto3.ReadyForQuery{TxStatus: 'I'}), out)
	require.Empty(t, b.queue)

	// Another connection: the statement is prepared before the EXECUTE.
	other := &Books{}
	other.Init(c, stmtcache.New(10), new(uint64), &ParsedSet{}, sha256Name)
	got = feed(t, &up, c, other, encode(t, &pgproto3.Query{String: "EXECUTE twice(21)"}))
	want = encode(t, &pgproto3.Close{ObjectType: 'S', Name: srv},
		&pgproto3.Query{String: "PREPARE " + srv + " " + rest + "\n;EXECUTE  " + srv + " (21)"})
	require.Equal(t, string(want), string(got))
	rows := []pgproto3.Message{&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("?column?"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("42")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'}}
	out = down(t, other, mu, append([]pgproto3.Message{&pgproto3.CloseComplete{}, &pgproto3.CommandComplete{CommandTag: []byte("PREPARE")}}, rows...)...)
	require.Equal(t, encode(t, rows...), out, "the client sees only its EXECUTE's answer")
	require.True(t, other.Statements.Has(srv))

	// Now the connection has it: the EXECUTE alone.
	got = feed(t, &up, c, other, encode(t, &pgproto3.Query{String: "EXECUTE twice(1)"}))
	require.Equal(t, encode(t, &pgproto3.Query{String: "EXECUTE  " + srv + " (1)"}), got)
	down(t, other, mu, rows...)

	// A PREPARE of a name the client has is refused on the server with 42P05.
	got = feed(t, &up, c, other, encode(t, &pgproto3.Query{String: "PREPARE twice AS SELECT 1"}))
	require.True(t, bytes.Contains(got, []byte(`ERRCODE = '42P05', MESSAGE = 'prepared statement "twice" already exists'`)), "%q", got)
}

// A PREPARE the server refuses leaves nothing: its queued answer is
// skipped at ReadyForQuery, and the name and the server statement are
// forgotten.
func TestCoreSQLPrepareRefusedLeavesNothing(t *testing.T) {
	b, mu := newFuzzBooks(false, 10)
	c := b.Client
	up := wire.Framer{MaxLen: 1 << 20}
	feed(t, &up, c, b, encode(t, &pgproto3.Query{String: "PREPARE bad AS SELECT * FROM nosuch"}))
	require.Len(t, c.sqlStmts, 1)
	down(t, b, mu, &pgproto3.CloseComplete{}, &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P01", Message: "relation \"nosuch\" does not exist"},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	require.Empty(t, c.sqlStmts)
	require.Zero(t, b.Statements.Len())
	require.Empty(t, b.queue)
	got := feed(t, &up, c, b, encode(t, &pgproto3.Query{String: "EXECUTE bad"}))
	require.Equal(t, encode(t, &pgproto3.Query{String: "EXECUTE bad"}), got, "an unknown name goes as it is: the server answers 26000")
}

type refuseAll struct{}

func (refuseAll) RefusePins() bool { return true }

// pin_policy error at Bind: a Bind of a statement that would pin, even
// one streamed in pieces (a parameter over the framer's hold limit), is
// replaced by a Bind without parameters of sluice's refusing statement,
// and none of the client's parameter bytes reach the server.
func TestCoreRefusedBindDropsItsParameters(t *testing.T) {
	b, _ := newFuzzBooks(false, 10)
	c := b.Client
	c.Policy = refuseAll{}
	up := wire.Framer{MaxLen: 1 << 30}
	feed(t, &up, c, b, encode(t, &pgproto3.Parse{Name: "lock", Query: "SELECT pg_advisory_lock($1)"}))
	big := bytes.Repeat([]byte("7"), 3<<20)
	bind := encode(t, &pgproto3.Bind{PreparedStatement: "lock", Parameters: [][]byte{big}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	var got []byte
	for len(bind) > 0 {
		n := min(len(bind), 64<<10)
		got = append(got, feed(t, &up, c, b, bind[:n])...)
		bind = bind[n:]
	}
	require.False(t, bytes.Contains(got, []byte("7777")), "a parameter of the refused Bind reached the server")
	require.True(t, bytes.Contains(got, []byte("ERRCODE = '0A000'")), "the refusing statement is prepared")
	require.True(t, bytes.HasSuffix(got, encode(t, &pgproto3.Execute{}, &pgproto3.Sync{})))
	i := bytes.LastIndexByte(got[:len(got)-len(encode(t, &pgproto3.Execute{}, &pgproto3.Sync{}))], 'B')
	require.GreaterOrEqual(t, i, 0)
	var m pgproto3.Bind
	require.NoError(t, m.Decode(got[i+5:len(got)-len(encode(t, &pgproto3.Execute{}, &pgproto3.Sync{}))]))
	require.Empty(t, m.Parameters)
	require.Contains(t, m.PreparedStatement, "sluice_")
}
