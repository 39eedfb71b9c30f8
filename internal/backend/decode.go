package backend

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// decode turns one server message body into its pgproto3 form. Only the
// messages a server sends during startup, authentication and reset are
// known; the relay never calls this.
func decode(typ byte, body []byte) (pgproto3.BackendMessage, error) {
	var msg pgproto3.BackendMessage
	switch typ {
	case 'R':
		if len(body) < 4 {
			return nil, fmt.Errorf("authentication message too short")
		}
		switch binary.BigEndian.Uint32(body) {
		case pgproto3.AuthTypeOk:
			msg = &pgproto3.AuthenticationOk{}
		case pgproto3.AuthTypeCleartextPassword:
			msg = &pgproto3.AuthenticationCleartextPassword{}
		case pgproto3.AuthTypeMD5Password:
			msg = &pgproto3.AuthenticationMD5Password{}
		case pgproto3.AuthTypeSASL:
			msg = &pgproto3.AuthenticationSASL{}
		case pgproto3.AuthTypeSASLContinue:
			msg = &pgproto3.AuthenticationSASLContinue{}
		case pgproto3.AuthTypeSASLFinal:
			msg = &pgproto3.AuthenticationSASLFinal{}
		default:
			return nil, fmt.Errorf("server asked for unsupported authentication method %d", binary.BigEndian.Uint32(body))
		}
	case 'E':
		msg = &pgproto3.ErrorResponse{}
	case 'N':
		msg = &pgproto3.NoticeResponse{}
	case 'S':
		msg = &pgproto3.ParameterStatus{}
	case 'K':
		msg = &pgproto3.BackendKeyData{}
	case 'Z':
		msg = &pgproto3.ReadyForQuery{}
	case 'v':
		msg = &pgproto3.NegotiateProtocolVersion{}
	case 'C':
		msg = &pgproto3.CommandComplete{}
	case 'T':
		msg = &pgproto3.RowDescription{}
	case 'D':
		msg = &pgproto3.DataRow{}
	case 'I':
		msg = &pgproto3.EmptyQueryResponse{}
	case 'A':
		msg = &pgproto3.NotificationResponse{}
	default:
		return nil, fmt.Errorf("unexpected message type %q from server", typ)
	}
	if err := msg.Decode(body); err != nil {
		return nil, fmt.Errorf("decoding %T: %w", msg, err)
	}
	return msg, nil
}
