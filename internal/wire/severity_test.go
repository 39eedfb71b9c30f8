package wire

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func errorMessage(t testing.TB, e *pgproto3.ErrorResponse) []byte {
	b, err := e.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIsFatal(t *testing.T) {
	cases := []struct {
		msg  *pgproto3.ErrorResponse
		want bool
	}{
		{&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{&pgproto3.ErrorResponse{Severity: "PANIC", Code: "XX000", Message: "p"}, true},
		{&pgproto3.ErrorResponse{Severity: "SCHWERWIEGEND", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "x"}, true},
		{&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42601", Message: "FATAL"}, false},
		{&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "ERROR", Code: "42601", Message: "x"}, false},
	}
	for _, c := range cases {
		if got := IsFatal(errorMessage(t, c.msg)); got != c.want {
			t.Errorf("IsFatal(%+v) = %v, want %v", c.msg, got, c.want)
		}
	}
	for _, bad := range [][]byte{nil, {'E'}, {'N', 0, 0, 0, 4}, {'E', 0, 0, 0, 9, 'S', 'F', 'A', 'T'}} {
		if IsFatal(bad) {
			t.Errorf("IsFatal(%q) = true", bad)
		}
	}
}

func TestIsFatalIsAllocationFree(t *testing.T) {
	msg := errorMessage(t, &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "m"})
	if n := testing.AllocsPerRun(100, func() { IsFatal(msg) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// FuzzIsFatal: any bytes, never a panic; a message that says FATAL in V
// is fatal whatever follows.
func FuzzIsFatal(f *testing.F) {
	f.Add(errorMessage(f, &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "m"}))
	f.Add(errorMessage(f, &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "m"}))
	f.Add([]byte{'E', 0, 0, 0, 4})
	f.Add([]byte{'E', 0, 0, 0, 9, 'V', 'F', 'A'})
	f.Fuzz(func(t *testing.T, msg []byte) {
		IsFatal(msg)
	})
}
