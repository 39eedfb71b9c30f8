package proxy_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// A statement prepared in one batch and executed in a later one runs on
// whatever connection the client has then: its SET-like effect must be
// tracked there (the effects are noted at Bind, not only at Parse), or
// the setting would stay behind on the connection for the next client
// and be lost for this one.
func TestTxPreparedSetConfigExecutedLater(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a := h.connect(ctx)
	b := h.connect(ctx)
	const set = "SELECT set_config('search_path', $1, false)"
	_, err := a.Prepare(ctx, "setsp", set, nil) // Parse+Describe+Sync: one attachment
	require.NoError(t, err)
	query(t, b, "SELECT 1") // the connection goes to b and back in between
	res := a.ExecPrepared(ctx, "setsp", [][]byte{[]byte("tx_later, public")}, nil, nil).Read()
	require.NoError(t, res.Err)
	for range 3 {
		require.Equal(t, []string{`"$user", public`}, query(t, b, "SHOW search_path"), "b must not see a's setting")
		require.Equal(t, []string{"tx_later, public"}, query(t, a, "SHOW search_path"), "a keeps its setting")
	}
}

// Once a statement's text is known to parse, a lone Parse+Sync from a
// client outside a transaction is answered without a server connection
// (see answerParseLocally): a client whose only connection is held by
// another client's open transaction can still prepare, and its statement
// works once the connection is free.
func TestTxKnownStatementPreparedWithoutAConnection(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	const sql = "SELECT $1::int + 1"
	_, err := a.Prepare(ctx, "known", sql, nil)
	require.NoError(t, err)
	res := a.ExecPrepared(ctx, "known", [][]byte{[]byte("1")}, nil, nil).Read()
	require.NoError(t, res.Err)
	query(t, a, "BEGIN") // a holds the only connection

	prepared := make(chan error, 1)
	go func() { prepared <- parseSync(ctx, b, "mine", sql) }()
	require.NoError(t, <-prepared, "the known statement is prepared while a's transaction holds the connection")
	query(t, a, "COMMIT")
	res = b.ExecPrepared(ctx, "mine", [][]byte{[]byte("41")}, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "42", string(res.Rows[0][0]))
	// A second Parse of the same name is the server's to refuse (42P05).
	err = parseSync(ctx, b, "mine", sql)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "42P05", pe.Code)
}

// parseSync sends exactly Parse and Sync, as libpq's PQprepare does.
func parseSync(ctx context.Context, c *pgconn.PgConn, name, sql string) error {
	fe := c.Frontend()
	fe.SendParse(&pgproto3.Parse{Name: name, Query: sql})
	fe.SendSync(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		return err
	}
	var first error
	for {
		msg, err := fe.Receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			if first == nil {
				first = pgconn.ErrorResponseToPgError(m)
			}
		case *pgproto3.ReadyForQuery:
			return first
		}
	}
}
