package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// scramMechanism is the only SASL mechanism sluice offers: without TLS
// channel binding there is no SCRAM-SHA-256-PLUS.
const scramMechanism = "SCRAM-SHA-256"

// Authenticate runs the password exchange for method with the client on conn
// and returns nil if the client proved it knows the password.
//
// It returns ErrWrongPassword (caller sends 28P01) on a wrong password or a
// failed SCRAM proof, ErrEmptyPassword (which wraps it) when the client
// sent an empty password in answer to a cleartext or md5 request, an error wrapping ErrProtocol (caller sends 08P01) when
// the client breaks the protocol, and any other error when conn fails (an
// error wrapping io.EOF if the client sent Terminate). It never sends
// AuthenticationOk or ErrorResponse: the caller does, so that it can batch
// AuthenticationOk with ParameterStatus and friends in one write.
//
// Method fallbacks follow PgBouncer: md5 with only a SCRAM verifier known
// runs SCRAM; scram-sha-256 with only an md5 hash known runs md5; password
// accepts any stored form (comparing, hashing or deriving); trust exchanges
// nothing.
//
// creds == nil means the user is unknown: for every method but trust the
// exchange still runs (with a mock SCRAM salt stable per user, like
// PostgreSQL) so that a client cannot tell unknown users from wrong passwords,
// and the result is ErrWrongPassword. user is only used for that mock salt;
// otherwise the credentials' own user name is what md5 hashes are salted with.
func Authenticate(conn Conn, method Method, user string, creds *Credentials) error {
	switch method {
	case MethodTrust:
		return nil
	case MethodPassword:
		return authPassword(conn, creds)
	case MethodMD5:
		if creds != nil && creds.md5Hash == "" {
			_, err := authSCRAM(conn, creds.scram, false)
			return err
		}
		return authMD5(conn, creds)
	case MethodSCRAM:
		switch {
		case creds == nil:
			_, err := authSCRAM(conn, mockSCRAM(user), true)
			return err
		case !creds.hasSCRAM:
			return authMD5(conn, creds)
		}
		_, err := authSCRAM(conn, creds.scram, false)
		return err
	}
	return fmt.Errorf("auth: unknown authentication method %q", method)
}

// receive reads the client's answer to the authType request and checks it is
// a T.
func receive[T pgproto3.FrontendMessage](conn Conn, authType uint32) (T, error) {
	var zero T
	msg, err := conn.ReceivePassword(authType)
	if err != nil {
		return zero, fmt.Errorf("auth: receiving password message: %w", err)
	}
	switch m := msg.(type) {
	case T:
		return m, nil
	case *pgproto3.Terminate:
		return zero, fmt.Errorf("auth: client terminated during authentication: %w", io.EOF)
	}
	return zero, protocolError("expected %T, got %T", zero, msg)
}

func authPassword(conn Conn, creds *Credentials) error {
	if err := conn.Send(&pgproto3.AuthenticationCleartextPassword{}); err != nil {
		return fmt.Errorf("auth: sending password request: %w", err)
	}
	pm, err := receive[*pgproto3.PasswordMessage](conn, pgproto3.AuthTypeCleartextPassword)
	if err != nil {
		return err
	}
	if pm.Password == "" {
		return ErrEmptyPassword
	}
	if creds == nil {
		return ErrWrongPassword
	}
	var ok bool
	switch {
	case creds.hasPlaintext:
		// Compare digests so the comparison does not leak the length.
		a, b := sha256.Sum256([]byte(pm.Password)), sha256.Sum256([]byte(creds.plaintext))
		ok = subtle.ConstantTimeCompare(a[:], b[:]) == 1
	case creds.md5Hash != "":
		ok = constantTimeEqual(md5Hash(pm.Password, creds.user), creds.md5Hash)
	case creds.hasSCRAM:
		// Unavoidable PBKDF2: the verifier only lets us check by deriving.
		got, err := deriveSCRAM(pm.Password, creds.scram.KeyFactors)
		ok = err == nil && hmac.Equal(got.StoredKey, creds.scram.StoredKey) &&
			hmac.Equal(got.ServerKey, creds.scram.ServerKey)
	}
	if !ok {
		return ErrWrongPassword
	}
	return nil
}

func authMD5(conn Conn, creds *Credentials) error {
	var salt [4]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return fmt.Errorf("auth: generating md5 salt: %w", err)
	}
	if err := conn.Send(&pgproto3.AuthenticationMD5Password{Salt: salt}); err != nil {
		return fmt.Errorf("auth: sending md5 request: %w", err)
	}
	pm, err := receive[*pgproto3.PasswordMessage](conn, pgproto3.AuthTypeMD5Password)
	if err != nil {
		return err
	}
	if pm.Password == "" {
		return ErrEmptyPassword
	}
	if creds == nil || creds.md5Hash == "" || !constantTimeEqual(pm.Password, md5Response(creds.md5Hash, salt)) {
		return ErrWrongPassword
	}
	return nil
}

// scramTranscript is the three messages of a successful SCRAM exchange
// that make up its AuthMessage.
type scramTranscript struct {
	clientFirst, serverFirst, clientFinal string
}

// authSCRAM runs SCRAM-SHA-256 (RFC 5802/7677, no channel binding) with the
// xdg-go/scram server. The SCRAM user name in the client-first message is
// ignored (libpq and pgx send it empty): the lookup returns sc whatever it
// is. With mock set the exchange can only fail. On success it returns the
// messages exchanged.
func authSCRAM(conn Conn, sc scram.StoredCredentials, mock bool) (scramTranscript, error) {
	var tr scramTranscript
	err := authSCRAMInto(conn, sc, mock, &tr)
	return tr, err
}

func authSCRAMInto(conn Conn, sc scram.StoredCredentials, mock bool, tr *scramTranscript) error {
	srv, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return sc, nil })
	if err != nil {
		return fmt.Errorf("auth: creating SCRAM server: %w", err)
	}
	conv := srv.NewConversation()

	if err := conn.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}); err != nil {
		return fmt.Errorf("auth: sending SASL request: %w", err)
	}
	first, err := receive[*pgproto3.SASLInitialResponse](conn, pgproto3.AuthTypeSASL)
	if err != nil {
		return err
	}
	if first.AuthMechanism != scramMechanism {
		return protocolError("client selected an invalid SASL authentication mechanism %q", first.AuthMechanism)
	}
	clientFirst := string(first.Data) // first is only valid until the next receive
	serverFirst, err := conv.Step(clientFirst)
	if err != nil {
		return protocolError("malformed SCRAM client-first-message: %v", err)
	}
	if err := conn.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)}); err != nil {
		return fmt.Errorf("auth: sending SASL continue: %w", err)
	}
	final, err := receive[*pgproto3.SASLResponse](conn, pgproto3.AuthTypeSASLContinue)
	if err != nil {
		return err
	}
	serverFinal, err := conv.Step(string(final.Data))
	if err != nil {
		if serverFinal == scram.ErrInvalidProof {
			return ErrWrongPassword
		}
		return protocolError("malformed SCRAM client-final-message: %v", err)
	}
	if mock || !conv.Valid() {
		return ErrWrongPassword
	}
	if err := conn.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)}); err != nil {
		return fmt.Errorf("auth: sending SASL final: %w", err)
	}
	*tr = scramTranscript{clientFirst: clientFirst, serverFirst: serverFirst, clientFinal: string(final.Data)}
	return nil
}

// mockSecret keys the mock SCRAM salts; random per process, like
// PostgreSQL's mock_auth_nonce.
var mockSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
})

// mockSCRAM returns credentials for an unknown user: the salt is stable per
// user (a probing client sees the same salt twice, as for a real user) and the
// keys match no password.
func mockSCRAM(user string) scram.StoredCredentials {
	mac := hmac.New(sha256.New, mockSecret())
	mac.Write([]byte(user))
	sum := mac.Sum(nil)
	keys := make([]byte, 2*sha256.Size)
	_, _ = rand.Read(keys)
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(sum[:saltLen]), Iters: defaultSCRAMIterations},
		StoredKey:  keys[:sha256.Size],
		ServerKey:  keys[sha256.Size:],
	}
}
