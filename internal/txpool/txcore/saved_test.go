package txcore

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// A client's statements saved on one process and restored on another
// (the upgrade hand-off) are prepared on the new process's connection at
// their first use, under the same server name, as after any attach.
func TestSavedStatementsRestoreAndPrepareLazily(t *testing.T) {
	b, _ := newFuzzBooks(false, 10)
	up := wire.Framer{MaxLen: 1 << 20}
	const query = "SELECT $1::int"
	feed(t, &up, b.Client, b, encode(t, &pgproto3.Parse{Name: "s1", Query: query, ParameterOIDs: []uint32{23}},
		&pgproto3.Parse{Query: "SELECT 2"}, &pgproto3.Sync{}))
	saved := b.Client.SavedStatements()
	if len(saved) != 2 {
		t.Fatalf("saved %d statements, want the named one and the unnamed one", len(saved))
	}

	nb, _ := newFuzzBooks(false, 10)
	nb.Client.stmts = nil
	if err := nb.Client.RestoreStatements(saved); err != nil {
		t.Fatal(err)
	}
	srv := sha256Name("", []byte(query), []byte{0, 1, 0, 0, 0, 23})
	got := feed(t, &up, nb.Client, nb, encode(t, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{},
		&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}))
	want := encode(t, &pgproto3.Close{ObjectType: 'S', Name: srv}, &pgproto3.Parse{Name: srv, Query: query, ParameterOIDs: []uint32{23}},
		&pgproto3.Bind{PreparedStatement: srv}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT 2"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !bytes.Equal(got, want) {
		t.Fatalf("to the new process's server:\n%q\nwant\n%q", got, want)
	}
}

// What arrives from another process is checked as a Parse would be: a
// NUL would cut the message sluice builds from it, and a parameter list
// must be whole.
func TestRestoreStatementsRefusesMalformed(t *testing.T) {
	ok := SavedStatement{Name: "s", Query: []byte("SELECT 1"), Params: []byte{0, 0}, Server: "sluice_x"}
	bad := []SavedStatement{
		{Name: "s", Query: []byte("SELECT 1\x00; DROP TABLE t"), Params: []byte{0, 0}, Server: "sluice_x"},
		{Name: "s\x00", Query: []byte("SELECT 1"), Params: []byte{0, 0}, Server: "sluice_x"},
		{Name: "s", Query: []byte("SELECT 1"), Params: []byte{0, 1, 0, 0}, Server: "sluice_x"},
		{Name: "s", Query: []byte("SELECT 1"), Params: nil, Server: "sluice_x"},
		{Name: "s", Query: []byte("SELECT 1"), Params: []byte{0, 0}},
		{Query: []byte("SELECT 1"), Params: []byte{0, 0}, Server: "sluice_x"},
	}
	for i, s := range bad {
		c := &Client{}
		if err := c.RestoreStatements([]SavedStatement{ok, s}); err != ErrMalformed {
			t.Errorf("statement %d: %v, want ErrMalformed", i, err)
		}
		if len(c.stmts) != 0 || c.unnamed != nil {
			t.Errorf("statement %d: something was restored", i)
		}
	}
}

// A SQL-level statement is spliced into SQL text ("PREPARE " + server
// name + " " + text), so what arrives must be exactly one PREPARE of a
// name of sluice's form: no second statement, no other name.
func TestRestoreSQLStatementsRefusesWhatIsNotOnePrepare(t *testing.T) {
	const srv = "sluice_0123456789abcdef01234567"
	good := SavedStatement{Name: "q", Query: []byte("(int) AS SELECT $1"), Server: srv, SQL: true}
	c := &Client{}
	if err := c.RestoreStatements([]SavedStatement{good}); err != nil {
		t.Fatalf("a well-formed statement: %v", err)
	}
	if st := c.sqlStmts["q"]; st == nil || st.rest != "(int) AS SELECT $1" || st.srv != srv {
		t.Fatalf("restored %+v", c.sqlStmts["q"])
	}
	bad := []SavedStatement{
		{Name: "q", Query: []byte("AS SELECT 1; DROP TABLE t"), Server: srv, SQL: true},
		{Name: "q", Query: []byte("AS SELECT 1"), Server: "x; DROP TABLE t; PREPARE sluice_0123456789abcdef01234567", SQL: true},
		{Name: "q", Query: []byte("AS SELECT 1"), Server: "sluice_0123456789ABCDEF01234567", SQL: true},
		{Name: "q", Query: []byte("AS SELECT '"), Server: srv, SQL: true},
		{Name: "", Query: []byte("AS SELECT 1"), Server: srv, SQL: true},
		{Name: "q", Query: []byte("AS SELECT 1\x00"), Server: srv, SQL: true},
	}
	for i, s := range bad {
		c := &Client{}
		if err := c.RestoreStatements([]SavedStatement{good, s}); err != ErrMalformed {
			t.Errorf("statement %d: %v, want ErrMalformed", i, err)
		}
		if len(c.sqlStmts) != 0 {
			t.Errorf("statement %d: something was restored", i)
		}
	}
}
