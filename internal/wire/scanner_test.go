package wire

import (
	"encoding/binary"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

type seen struct {
	typ   byte
	n     uint32
	first byte
}

func stream(t testing.TB) []byte {
	buf, err := Append(nil,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 23}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1")}},
		&pgproto3.DataRow{Values: [][]byte{make([]byte, 3000)}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 2")},
		&pgproto3.ReadyForQuery{TxStatus: 'T'},
	)
	require.NoError(t, err)
	return buf
}

func scanAll(t *testing.T, data []byte, chunk int) ([]seen, *Scanner) {
	var s Scanner
	var got []seen
	for len(data) > 0 {
		n := min(chunk, len(data))
		require.NoError(t, s.Scan(data[:n], 0, func(typ byte, l uint32, first byte, end int) {
			require.LessOrEqual(t, end, n)
			got = append(got, seen{typ, l, first})
		}))
		data = data[n:]
	}
	return got, &s
}

func TestScannerFindsEveryMessageWhateverTheChunking(t *testing.T) {
	data := stream(t)
	want, _ := scanAll(t, data, len(data))
	require.Len(t, want, 5)
	require.Equal(t, seen{'Z', 1, 'T'}, want[4])
	for _, chunk := range []int{1, 2, 3, 4, 5, 6, 7, 100, 512, 4096} {
		got, s := scanAll(t, data, chunk)
		require.Equal(t, want, got, "chunk %d", chunk)
		require.True(t, s.AtBoundary())
	}
}

func TestScannerReportsPartialMessage(t *testing.T) {
	data := stream(t)
	_, s := scanAll(t, data[:len(data)-1], 7)
	require.False(t, s.AtBoundary())
	_, s = scanAll(t, data[:3], 7)
	require.False(t, s.AtBoundary())
}

func TestScannerRejectsBadLengths(t *testing.T) {
	var s Scanner
	bad := []byte{'D', 0, 0, 0, 3}
	require.ErrorAs(t, s.Scan(bad, 0, func(byte, uint32, byte, int) {}), &ErrLength{})
	var s2 Scanner
	big := []byte{'D', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(big[1:], 1<<20)
	require.Error(t, s2.Scan(big, 1000, func(byte, uint32, byte, int) {}))
}

func TestEndOffsetLocatesTerminate(t *testing.T) {
	data, err := Append(nil, &pgproto3.Query{String: "select 1"}, &pgproto3.Terminate{})
	require.NoError(t, err)
	var s Scanner
	var at int
	require.NoError(t, s.Scan(data, 0, func(typ byte, _ uint32, _ byte, end int) {
		if typ == 'X' {
			at = end - HeaderLen
		}
	}))
	require.Equal(t, len(data)-5, at)
}

func FuzzScanner(f *testing.F) {
	f.Add(stream(f), uint8(7))
	f.Add([]byte{'Z', 0, 0, 0, 5, 'I'}, uint8(1))
	f.Add([]byte{'X', 0, 0, 0, 4}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		c := int(chunk%64) + 1
		var whole, split Scanner
		var a, b []seen
		errA := whole.Scan(data, 1<<20, func(typ byte, l uint32, first byte, _ int) { a = append(a, seen{typ, l, first}) })
		var errB error
		for rest := data; len(rest) > 0 && errB == nil; {
			n := min(c, len(rest))
			errB = split.Scan(rest[:n], 1<<20, func(typ byte, l uint32, first byte, _ int) { b = append(b, seen{typ, l, first}) })
			rest = rest[n:]
		}
		if (errA == nil) != (errB == nil) {
			t.Fatalf("chunking changed the outcome: %v vs %v", errA, errB)
		}
		if errA == nil && len(a) != len(b) {
			t.Fatalf("chunking changed the messages: %d vs %d", len(a), len(b))
		}
	})
}

// BenchmarkScanDataRows measures the relay's per-chunk framing cost: it
// must not allocate.
func BenchmarkScanDataRows(b *testing.B) {
	var rows []byte
	for range 100 {
		rows, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("12345"), []byte("some text value")}}).Encode(rows)
	}
	var s Scanner
	var z int
	visit := func(typ byte, _ uint32, _ byte, _ int) {
		if typ == 'Z' {
			z++
		}
	}
	b.SetBytes(int64(len(rows)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Scan(rows, 0, visit); err != nil {
			b.Fatal(err)
		}
	}
}
