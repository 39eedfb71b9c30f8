// Package auth implements both halves of PostgreSQL password authentication
// for sluice:
//
//   - client-facing: sluice plays the PostgreSQL server and checks a client's
//     password (Authenticate) against Credentials prepared at config load;
//   - server-facing: sluice plays a PostgreSQL client and logs in to the real
//     server as the client's user (Login).
//
// Both halves speak pgproto3 messages through tiny interfaces (Conn and
// ServerConn) so that the caller keeps ownership of the socket, its framing,
// buffers and deadlines. Nothing in this package starts goroutines or keeps
// references to a connection after a call returns.
package auth

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Method is a client authentication method, spelled as in pg_hba.conf.
type Method string

// Supported client authentication methods.
const (
	MethodSCRAM    Method = "scram-sha-256"
	MethodMD5      Method = "md5"
	MethodPassword Method = "password"
	MethodTrust    Method = "trust"
)

// ParseMethod validates a method name from configuration.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case MethodSCRAM, MethodMD5, MethodPassword, MethodTrust:
		return m, nil
	}
	return "", fmt.Errorf("auth: unknown authentication method %q (want scram-sha-256, md5, password or trust)", s)
}

// ErrWrongPassword is returned by Authenticate when the client proved it does
// not know the password (wrong password, failed SCRAM proof, or an unknown
// user). The caller answers with SQLSTATE 28P01
// `password authentication failed for user "x"`.
var ErrWrongPassword = errors.New("auth: password authentication failed")

// ErrEmptyPassword is returned by Authenticate when the client answered a
// cleartext or md5 password request with an empty password. It wraps
// ErrWrongPassword (it is a failed login like any other), but PostgreSQL
// answers it with its own message, and so does the caller: SQLSTATE 28P01
// EmptyPasswordMessage, for known and unknown users alike, as PostgreSQL
// checks for it before it looks at the role.
var ErrEmptyPassword = fmt.Errorf("%w: empty password", ErrWrongPassword)

// EmptyPasswordMessage is PostgreSQL's message for an empty password
// (recv_password_packet in src/backend/libpq/auth.c). libpq never sends
// one; other clients may.
const EmptyPasswordMessage = "empty password returned by client"

// ErrProtocol is wrapped by every error Authenticate returns because the
// client broke the authentication protocol (unexpected message, malformed
// SASL data, unsupported mechanism). The caller answers with SQLSTATE 08P01.
// Errors that wrap neither ErrWrongPassword nor ErrProtocol come from the Conn
// itself (I/O, decoding); the client may already be gone.
var ErrProtocol = errors.New("auth: protocol violation")

func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Conn is the message I/O Authenticate needs from the client connection. The
// caller adapts its own connection; BackendConn adapts a *pgproto3.Backend.
type Conn interface {
	// Send encodes msgs and writes them out (flushing) before returning.
	Send(msgs ...pgproto3.BackendMessage) error
	// ReceivePassword reads the client's next message. authType is the
	// authentication request the client is answering, one of
	// pgproto3.AuthTypeCleartextPassword, AuthTypeMD5Password (expect a
	// *pgproto3.PasswordMessage), AuthTypeSASL (expect a
	// *pgproto3.SASLInitialResponse) or AuthTypeSASLContinue (expect a
	// *pgproto3.SASLResponse): message type 'p' is ambiguous without it, see
	// pgproto3.Backend.SetAuthType. Any other message may be returned too;
	// Authenticate treats it as a protocol violation (or, for Terminate, as
	// the client going away). The message only needs to stay valid until the
	// next call.
	ReceivePassword(authType uint32) (pgproto3.FrontendMessage, error)
}

// ServerConn is the message I/O Login needs from the server connection.
// FrontendConn adapts a *pgproto3.Frontend.
type ServerConn interface {
	// Send encodes msgs and writes them out (flushing) before returning.
	Send(msgs ...pgproto3.FrontendMessage) error
	// Receive reads the server's next message. It only needs to stay valid
	// until the next call (Login copies what it keeps).
	Receive() (pgproto3.BackendMessage, error)
}

// BackendConn adapts a *pgproto3.Backend (sluice's side of a client
// connection) to Conn. It is a thin value; the Backend stays owned by the
// caller.
type BackendConn struct{ B *pgproto3.Backend }

// Send buffers msgs and flushes them.
func (c BackendConn) Send(msgs ...pgproto3.BackendMessage) error {
	for _, m := range msgs {
		c.B.Send(m)
	}
	return c.B.Flush()
}

// ReceivePassword sets the Backend's auth type and receives one message.
func (c BackendConn) ReceivePassword(authType uint32) (pgproto3.FrontendMessage, error) {
	if err := c.B.SetAuthType(authType); err != nil {
		return nil, err
	}
	return c.B.Receive()
}

// FrontendConn adapts a *pgproto3.Frontend (sluice's side of a server
// connection) to ServerConn. The Frontend stays owned by the caller.
type FrontendConn struct{ F *pgproto3.Frontend }

// Send buffers msgs and flushes them.
func (c FrontendConn) Send(msgs ...pgproto3.FrontendMessage) error {
	for _, m := range msgs {
		c.F.Send(m)
	}
	return c.F.Flush()
}

// Receive receives one message from the server.
func (c FrontendConn) Receive() (pgproto3.BackendMessage, error) { return c.F.Receive() }
