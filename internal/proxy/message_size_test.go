package proxy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// readUntilEnd reads messages until ReadyForQuery (true) or the end of
// the connection (false), collecting error responses and the first
// column of data rows.
func readUntilEnd(t *testing.T, fe *pgproto3.Frontend) (errs []pgproto3.ErrorResponse, rows []string, ready bool) {
	t.Helper()
	for {
		msg, err := fe.Receive()
		if err != nil {
			require.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
				strings.Contains(err.Error(), "connection reset"), "%v", err)
			return errs, rows, false
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			errs = append(errs, *m)
		case *pgproto3.DataRow:
			rows = append(rows, string(m.Values[0]))
		case *pgproto3.ReadyForQuery:
			return errs, rows, true
		}
	}
}

// TestMessageOverMaxMessageSize: a message longer than
// limits.max_message_size gets one 54000 and the connection closes,
// before any of it reaches the server, in both pool modes.
func TestMessageOverMaxMessageSize(t *testing.T) {
	for mode, pool := range poolModes {
		t.Run(mode, func(t *testing.T) {
			h := startWith(t, pool, "limits:\n  max_message_size: 65536\n")
			fe := rawLogin(t, h)
			// A message at the limit still works.
			q := "SELECT length('" + strings.Repeat("x", 65536-4-len("SELECT length('')")-1) + "')"
			fe.Send(&pgproto3.Query{String: q})
			require.NoError(t, fe.Flush())
			errs, rows, ready := readUntilEnd(t, fe)
			require.Empty(t, errs)
			require.True(t, ready)
			require.Equal(t, []string{fmt.Sprint(65536 - 4 - len("SELECT length('')") - 1)}, rows)
			// One byte more: refused.
			fe.Send(&pgproto3.Query{String: q + " "})
			require.NoError(t, fe.Flush())
			errs, _, ready = readUntilEnd(t, fe)
			require.False(t, ready)
			require.Len(t, errs, 1, "%+v", errs)
			require.Equal(t, "54000", errs[0].Code)
			require.Equal(t, "FATAL", errs[0].Severity)
			require.Contains(t, errs[0].Message, "limits.max_message_size (65536)")
		})
	}
}

// TestUnknownFrontendMessageType: a message type no client may send gets
// PostgreSQL's 08P01 "invalid frontend message type N", alone, then the
// connection closes, in both pool modes (in transaction mode sluice says
// it without bothering the server).
func TestUnknownFrontendMessageType(t *testing.T) {
	for mode, pool := range poolModes {
		t.Run(mode, func(t *testing.T) {
			h := start(t, pool)
			pc := h.connect(context.Background())
			hj, err := pc.Hijack()
			require.NoError(t, err)
			defer hj.Conn.Close()
			_, err = hj.Conn.Write([]byte{'Y', 0, 0, 0, 8, 'a', 'b', 'c', 0})
			require.NoError(t, err)
			errs, _, ready := readUntilEnd(t, pgproto3.NewFrontend(hj.Conn, hj.Conn))
			require.False(t, ready)
			require.Len(t, errs, 1, "%+v", errs)
			require.Equal(t, "08P01", errs[0].Code)
			require.Equal(t, "invalid frontend message type 89", errs[0].Message)
		})
	}
}

// TestTxLargeMessagesStream: in transaction mode, a Query larger than
// what sluice assembles (1 MiB) streams through and its effects are
// still seen (the session setting it makes follows the client to its
// next transaction), and a large Bind of a named statement is renamed at
// its head and streams its value.
func TestTxLargeMessagesStream(t *testing.T) {
	h := start(t, txPool(2))
	ctx := context.Background()
	c := h.connect(ctx)
	_, err := c.Prepare(ctx, "early", "SELECT 'still here'", nil)
	require.NoError(t, err)
	big := strings.Repeat("y", 3<<20)
	results, err := c.Exec(ctx, "SET application_name = 'streamed'; SELECT length('"+big+"')").ReadAll()
	require.NoError(t, err)
	require.Len(t, results, 2)
	require.Equal(t, fmt.Sprint(len(big)), string(results[1].Rows[0][0]))
	require.Equal(t, []string{"streamed"}, query(t, c, "SHOW application_name"))
	res := c.ExecPrepared(ctx, "early", nil, nil, nil).Read()
	require.NoError(t, res.Err, "a statement prepared before the large Query")
	require.Equal(t, "still here", string(res.Rows[0][0]))

	// Another client takes the connection meanwhile: the statement must be
	// prepared again on whichever connection the Bind reaches.
	_, err = c.Prepare(ctx, "len", "SELECT length($1::text)", nil)
	require.NoError(t, err)
	other := h.connect(ctx)
	query(t, other, "SELECT 1")
	for _, n := range []int{10, 2 << 20, 5 << 20} {
		res := c.ExecPrepared(ctx, "len", [][]byte{[]byte(strings.Repeat("z", n))}, nil, nil).Read()
		require.NoError(t, res.Err)
		require.Equal(t, fmt.Sprint(n), string(res.Rows[0][0]))
	}
	res = c.ExecParams(ctx, "SELECT length($1::text)", [][]byte{[]byte(big)}, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, fmt.Sprint(len(big)), string(res.Rows[0][0]))
}

// TestTxLargeParseIsRefused: a Parse over 16 MiB, whose text transaction
// pooling would have to keep, gets 54000 saying why, then a close.
func TestTxLargeParseIsRefused(t *testing.T) {
	h := start(t, txPool(2))
	fe := rawLogin(t, h)
	q := "SELECT length('" + strings.Repeat("p", 16<<20) + "')"
	fe.Send(&pgproto3.Parse{Name: "big", Query: q})
	fe.Send(&pgproto3.Sync{})
	fe.Flush() // may fail: sluice closes without reading the rest; its answer is there to read
	errs, _, ready := readUntilEnd(t, fe)
	require.False(t, ready)
	require.Len(t, errs, 1, "%+v", errs)
	require.Equal(t, "54000", errs[0].Code)
	require.Contains(t, errs[0].Message, "send it as a simple Query or use session pooling")
}

// queryHeader is the header of a Query message whose text is n bytes.
func queryHeader(n int) []byte {
	return binary.BigEndian.AppendUint32([]byte{'Q'}, uint32(4+n+1))
}

var _ = pgtest.AppDB

// TestPsqlSeesMessageSizeRefusal: psql sending a Query far over
// limits.max_message_size prints sluice's 54000, though sluice closes the
// connection while psql is still writing.
func TestPsqlSeesMessageSizeRefusal(t *testing.T) {
	for mode, pool := range poolModes {
		t.Run(mode, func(t *testing.T) {
			h := startWith(t, pool, "limits:\n  max_message_size: 65536\n")
			file := filepath.Join(t.TempDir(), "big.sql")
			require.NoError(t, os.WriteFile(file, []byte("SELECT length('"+strings.Repeat("q", 8<<20)+"');\n"), 0o600))
			out, err := psql(t, []string{"PGPASSWORD=" + pgtest.AppPassword}, "-h", "127.0.0.1", "-p", strconv.Itoa(h.port),
				"-U", pgtest.AppUser, "-d", pgtest.AppDB, "-f", file)
			require.Error(t, err, out)
			require.Contains(t, out, "over limits.max_message_size (65536)")
		})
	}
}
