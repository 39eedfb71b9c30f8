package backend

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// maxQueryRows bounds what Query keeps; it is for small lookups.
const maxQueryRows = 1000

// Query runs one statement with text parameters ($1, $2, ...) over the
// extended protocol with the unnamed statement and portal, so the
// parameters are never spliced into SQL and nothing stays prepared, and
// returns the rows as text (nil for NULL). It is meant for small
// look-ups (auth_query) on an idle connection, which it leaves idle. An
// error from the server is returned as *ServerError and the connection
// stays usable; any other error means it must be closed.
func (c *Conn) Query(ctx context.Context, sql string, args ...string) ([][][]byte, error) {
	defer c.watch(ctx)()
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	if err := c.Send(&pgproto3.Parse{Query: sql}, &pgproto3.Bind{Parameters: params},
		&pgproto3.Execute{}, &pgproto3.Sync{}); err != nil {
		return nil, err
	}
	var rows [][][]byte
	var srvErr *pgproto3.ErrorResponse
	for {
		typ, body, err := wire.ReadMessage(c.reader(), maxServerMessage)
		if err != nil {
			return nil, err
		}
		switch typ {
		case '1', '2', 'n', 't', 'C', 'I', 'N', 's':
			// ParseComplete, BindComplete, NoData, ParameterDescription,
			// CommandComplete, EmptyQueryResponse, NoticeResponse,
			// PortalSuspended: nothing to keep.
		case 'D':
			var dr pgproto3.DataRow
			if err := dr.Decode(body); err != nil {
				return nil, fmt.Errorf("decoding DataRow: %w", err)
			}
			if len(rows) >= maxQueryRows {
				continue
			}
			row := make([][]byte, len(dr.Values))
			for i, v := range dr.Values {
				if v != nil {
					row[i] = append([]byte{}, v...)
				}
			}
			rows = append(rows, row)
		case 'S', 'E', 'A':
			msg, err := decode(typ, body)
			if err != nil {
				return nil, err
			}
			switch m := msg.(type) {
			case *pgproto3.ParameterStatus:
				c.setParam(m.Name, m.Value)
			case *pgproto3.ErrorResponse:
				if srvErr == nil {
					cp := *m
					srvErr = &cp
				}
			}
		case 'Z':
			var rfq pgproto3.ReadyForQuery
			if err := rfq.Decode(body); err != nil {
				return nil, fmt.Errorf("decoding ReadyForQuery: %w", err)
			}
			if err := c.release(); err != nil {
				return nil, err
			}
			if rfq.TxStatus != 'I' {
				return nil, fmt.Errorf("server in transaction status %q after a look-up", rfq.TxStatus)
			}
			if srvErr != nil {
				return nil, &ServerError{Response: srvErr}
			}
			return rows, nil
		default:
			return nil, fmt.Errorf("unexpected message type %q from server during a look-up", typ)
		}
	}
}
