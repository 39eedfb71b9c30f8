package frontend

import (
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// maxPasswordMessage bounds a client's password or SASL message.
const maxPasswordMessage = 8192

// AuthConn adapts a client connection to auth.Conn for the login exchange.
// It reads exactly one message per call straight from the socket (no
// read-ahead buffer), so nothing is lost when the relay takes over.
type AuthConn struct{ Conn net.Conn }

// Send encodes msgs and writes them in one call.
func (a AuthConn) Send(msgs ...pgproto3.BackendMessage) error {
	buf := make([]byte, 0, 256)
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			return err
		}
	}
	_, err := a.Conn.Write(buf)
	return err
}

// ReceivePassword reads the client's answer to an authentication request of
// authType; message type 'p' means a different message for each type.
func (a AuthConn) ReceivePassword(authType uint32) (pgproto3.FrontendMessage, error) {
	typ, body, err := wire.ReadMessage(a.Conn, maxPasswordMessage)
	if err != nil {
		return nil, err
	}
	var msg pgproto3.FrontendMessage
	switch typ {
	case 'X':
		return &pgproto3.Terminate{}, nil
	case 'p':
		switch authType {
		case pgproto3.AuthTypeSASL:
			msg = &pgproto3.SASLInitialResponse{}
		case pgproto3.AuthTypeSASLContinue:
			msg = &pgproto3.SASLResponse{}
		default:
			msg = &pgproto3.PasswordMessage{}
		}
	default:
		return nil, fmt.Errorf("expected a password message, got message type %q", typ)
	}
	if err := msg.Decode(body); err != nil {
		return nil, err
	}
	return msg, nil
}
