package wire

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes sluice itself sends.
const (
	CodeInvalidPassword       = "28P01"
	CodeInvalidAuthSpec       = "28000"
	CodeInvalidCatalogName    = "3D000"
	CodeTooManyConnections    = "53300"
	CodeConnectionFailure     = "08006"
	CodeProtocolViolation     = "08P01"
	CodeAdminShutdown         = "57P01"
	CodeFeatureNotSupported   = "0A000"
	CodeQueryCanceled         = "57014"
	CodeInvalidParameterValue = "22023"
	// CodeIdleInTransactionTimeout is idle_in_transaction_session_timeout.
	CodeIdleInTransactionTimeout = "25P03"
)

// CodeObjectNotInPrerequisiteState refuses the clients of a database the
// operator disabled (DISABLE db), as PostgreSQL refuses a database with
// datallowconn = false.
const CodeObjectNotInPrerequisiteState = "55000"

// Error builds a FATAL ErrorResponse with a SQLSTATE and message.
func Error(code, format string, args ...any) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
}

// Append encodes msgs after dst.
func Append(dst []byte, msgs ...pgproto3.Message) ([]byte, error) {
	var err error
	for _, m := range msgs {
		if dst, err = m.Encode(dst); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// Write encodes msgs into one buffer and writes it with a single call.
func Write(w io.Writer, msgs ...pgproto3.Message) error {
	buf, err := Append(nil, msgs...)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// ReadMessage reads one whole typed message from r. The body is allocated
// fresh (callers keep it); it is meant for the startup and reset phases, not
// for the relay. A length above maxBody is an ErrLength.
func ReadMessage(r io.Reader, maxBody uint32) (typ byte, body []byte, err error) {
	var hdr [HeaderLen]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	l := binary.BigEndian.Uint32(hdr[1:])
	if l < 4 || l-4 > maxBody {
		return 0, nil, ErrLength{Type: hdr[0], Length: l}
	}
	body = make([]byte, l-4)
	if _, err = io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

// CodeProgramLimitExceeded is SQLSTATE 54000, for a message over
// limits.max_message_size.
const CodeProgramLimitExceeded = "54000"

// ErrUnknownType is a message type no frontend may send after startup.
type ErrUnknownType byte

// Error is PostgreSQL's own wording.
func (e ErrUnknownType) Error() string {
	return fmt.Sprintf("invalid frontend message type %d", byte(e))
}

// IsFrontendType reports whether a logged-in client may send a message
// of type typ: PostgreSQL's list (postgres.c, SocketBackend). Anything
// else PostgreSQL answers with FATAL 08P01 "invalid frontend message type".
func IsFrontendType(typ byte) bool {
	switch typ {
	case 'B', 'C', 'D', 'E', 'F', 'H', 'P', 'Q', 'S', 'X', 'd', 'c', 'f':
		return true
	}
	return false
}
