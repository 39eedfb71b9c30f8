package auth

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maxServerSCRAMIterations bounds the PBKDF2 work a server can make Login do
// (same ceiling as pgx).
const maxServerSCRAMIterations = 10_000_000

// ServerError is an ErrorResponse the server sent during login. The caller
// can relay Response (Severity, Code, Message...) to the client unchanged.
type ServerError struct {
	// Response is a private copy: it stays valid after Login returns.
	Response *pgproto3.ErrorResponse
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("auth: server error: %s: %s (SQLSTATE %s)", e.Response.Severity, e.Response.Message, e.Response.Code)
}

// Login answers the server's authentication requests on conn as user with
// password until AuthenticationOk, which it consumes, and then returns nil.
// The caller has already sent the StartupMessage; messages after
// AuthenticationOk (ParameterStatus, BackendKeyData, ReadyForQuery) are left
// for the caller to read.
//
// Supported: trust (AuthenticationOk straight away), cleartext password, md5,
// and SASL SCRAM-SHA-256 (the server signature is verified, so a server that
// does not know the password cannot fake success). NoticeResponse and
// NegotiateProtocolVersion messages before AuthenticationOk are skipped.
// An ErrorResponse is returned as *ServerError. GSS, SSPI, SCRAM-SHA-256-PLUS
// only (channel binding) and unknown requests get a descriptive error. If the
// server wants a password and password is "", the error says that no server
// password is configured for user.
func Login(conn ServerConn, user, password string) error {
	needPassword := func() error {
		if password == "" {
			return fmt.Errorf("auth: server requested a password for user %q but no server password is configured for that user", user)
		}
		return nil
	}
	for {
		msg, err := receiveServer(conn)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationOk:
			return nil
		case *pgproto3.NoticeResponse, *pgproto3.NegotiateProtocolVersion:
			continue
		case *pgproto3.AuthenticationCleartextPassword:
			if err := needPassword(); err != nil {
				return err
			}
			err = conn.Send(&pgproto3.PasswordMessage{Password: password})
		case *pgproto3.AuthenticationMD5Password:
			if err := needPassword(); err != nil {
				return err
			}
			err = conn.Send(&pgproto3.PasswordMessage{Password: md5Response(md5Hash(password, user), m.Salt)})
		case *pgproto3.AuthenticationSASL:
			if !slices.Contains(m.AuthMechanisms, scramMechanism) {
				return fmt.Errorf("auth: server offers SASL mechanisms %v but sluice supports only %s (no channel binding)", m.AuthMechanisms, scramMechanism)
			}
			if err := needPassword(); err != nil {
				return err
			}
			if err := loginSCRAM(conn, password); err != nil {
				return err
			}
			continue
		case *pgproto3.AuthenticationGSS, *pgproto3.AuthenticationGSSContinue:
			return errors.New("auth: server requested GSSAPI authentication, which sluice does not support")
		default:
			return fmt.Errorf("auth: unexpected %T from server during authentication", msg)
		}
		if err != nil {
			return fmt.Errorf("auth: sending password to server: %w", err)
		}
	}
}

// receiveServer reads one server message, turning an ErrorResponse into a
// *ServerError.
func receiveServer(conn ServerConn) (pgproto3.BackendMessage, error) {
	msg, err := conn.Receive()
	if err != nil {
		// pgproto3.Frontend reports SSPI and SCM credential requests as
		// decode errors ("AuthTypeSSPI is unimplemented").
		return nil, fmt.Errorf("auth: receiving from server: %w", err)
	}
	if e, ok := msg.(*pgproto3.ErrorResponse); ok {
		cp := *e // the Receive buffer is reused; keep our own copy
		return nil, &ServerError{Response: &cp}
	}
	return msg, nil
}

// loginSCRAM runs the client side of SCRAM-SHA-256 after the server's
// AuthenticationSASL, up to and including verifying AuthenticationSASLFinal.
func loginSCRAM(conn ServerConn, password string) error {
	client, err := newSCRAMClient(password)
	if err != nil {
		return fmt.Errorf("auth: creating SCRAM client: %w", err)
	}
	// Like libpq, accept any positive iteration count the server chose
	// (PostgreSQL 16's scram_iterations may be lowered below 4096).
	conv := client.WithMinIterations(1).NewConversation()
	clientFirst, err := conv.Step("")
	if err != nil {
		return fmt.Errorf("auth: SCRAM client-first-message: %w", err)
	}
	if err := conn.Send(&pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: []byte(clientFirst)}); err != nil {
		return fmt.Errorf("auth: sending SASL initial response: %w", err)
	}

	msg, err := receiveServer(conn)
	if err != nil {
		return err
	}
	cont, ok := msg.(*pgproto3.AuthenticationSASLContinue)
	if !ok {
		return fmt.Errorf("auth: expected AuthenticationSASLContinue from server, got %T", msg)
	}
	if err := checkIterations(string(cont.Data)); err != nil {
		return err
	}
	clientFinal, err := conv.Step(string(cont.Data))
	if err != nil {
		return fmt.Errorf("auth: invalid SCRAM server-first-message: %w", err)
	}
	if err := conn.Send(&pgproto3.SASLResponse{Data: []byte(clientFinal)}); err != nil {
		return fmt.Errorf("auth: sending SASL response: %w", err)
	}

	msg, err = receiveServer(conn)
	if err != nil {
		return err
	}
	final, ok := msg.(*pgproto3.AuthenticationSASLFinal)
	if !ok {
		return fmt.Errorf("auth: expected AuthenticationSASLFinal from server, got %T", msg)
	}
	if _, err := conv.Step(string(final.Data)); err != nil {
		return fmt.Errorf("auth: SCRAM server-final-message rejected: %w", err)
	}
	if !conv.Valid() {
		return errors.New("auth: server failed to prove it knows the SCRAM password")
	}
	return nil
}

// checkIterations rejects server-first-messages demanding more PBKDF2
// iterations than maxServerSCRAMIterations; the scram library parses the rest.
func checkIterations(serverFirst string) error {
	for field := range strings.SplitSeq(serverFirst, ",") {
		if v, ok := strings.CutPrefix(field, "i="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > maxServerSCRAMIterations {
				return fmt.Errorf("auth: server requested too many SCRAM iterations (%d > %d)", n, maxServerSCRAMIterations)
			}
		}
	}
	return nil
}
