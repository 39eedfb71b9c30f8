package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/stringprep"
)

// ServerKeys is what sluice may log in to PostgreSQL with for a user whose
// password it does not hold (auth_query): it is recovered from the
// client's own login, so it exists only after a client proved it knows
// the password, and only in memory.
//
//   - For a SCRAM verifier: the user's SCRAM ClientKey, recovered from the
//     client's proof (ClientProof XOR HMAC(StoredKey, AuthMessage)), with
//     the verifier's salt, iteration count and ServerKey. The ClientKey is
//     enough to compute a proof for a new server nonce, and the ServerKey
//     lets sluice check that the server knows the verifier too.
//   - For an md5 hash: the hash itself, which md5 authentication accepts
//     in place of the password.
//
// A ServerKeys is immutable once returned and safe to share.
type ServerKeys struct {
	clientKey, serverKey []byte
	salt                 []byte
	iters                int
	md5Hash              string
	// password is set only when the stored password was plaintext
	// (possible with a custom auth_query), so the client's is the same.
	password string
}

// String never shows the keys (they are password-equivalent).
func (k *ServerKeys) String() string {
	switch {
	case k == nil:
		return "<no keys>"
	case k.clientKey != nil:
		return "<SCRAM client key>"
	case k.md5Hash != "":
		return "<md5 hash>"
	}
	return "<password>"
}

// LogValue keeps the keys out of slog output.
func (k *ServerKeys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Equal reports whether k and o would log in the same way.
func (k *ServerKeys) Equal(o *ServerKeys) bool {
	if k == nil || o == nil {
		return k == o
	}
	return hmac.Equal(k.clientKey, o.clientKey) && hmac.Equal(k.serverKey, o.serverKey) &&
		hmac.Equal(k.salt, o.salt) && k.iters == o.iters &&
		constantTimeEqual(k.md5Hash, o.md5Hash) && constantTimeEqual(k.password, o.password)
}

// AuthenticateKeys is Authenticate for credentials looked up from the
// server (auth_query): on success it also returns the ServerKeys that log
// in to PostgreSQL as the user. creds is what the lookup returned (nil for
// no such user: the exchange runs against mock credentials and fails like
// a wrong password). Method fallbacks are Authenticate's: a SCRAM verifier
// always gets SCRAM and an md5 hash md5, except with method password,
// where the client's cleartext password is checked against either and
// only the derived keys are kept. Trust is refused (ErrWrongPassword):
// it would yield no keys.
func AuthenticateKeys(conn Conn, method Method, user string, creds *Credentials) (*ServerKeys, error) {
	if creds == nil {
		if method == MethodTrust {
			return nil, ErrWrongPassword
		}
		return nil, Authenticate(conn, method, user, nil)
	}
	switch method {
	case MethodPassword:
		return authPasswordKeys(conn, creds)
	case MethodSCRAM, MethodMD5:
		if !creds.hasSCRAM || (method == MethodMD5 && creds.md5Hash != "") {
			if err := authMD5(conn, creds); err != nil {
				return nil, err
			}
			return &ServerKeys{md5Hash: creds.md5Hash, password: creds.plaintext}, nil
		}
		tr, err := authSCRAM(conn, creds.scram, false)
		if err != nil {
			return nil, err
		}
		ck, err := recoverClientKey(tr, creds.scram.StoredKey)
		if err != nil {
			// The library accepted the proof, so this cannot happen; fail
			// closed all the same.
			return nil, protocolError("recovering the SCRAM client key: %v", err)
		}
		return creds.scramKeys(ck), nil
	case MethodTrust:
		return nil, ErrWrongPassword
	}
	return nil, fmt.Errorf("auth: unknown authentication method %q", method)
}

func (c *Credentials) scramKeys(clientKey []byte) *ServerKeys {
	return &ServerKeys{clientKey: clientKey, serverKey: c.scram.ServerKey, salt: []byte(c.scram.Salt),
		iters: c.scram.Iters, md5Hash: c.md5Hash, password: c.plaintext}
}

// authPasswordKeys asks for the cleartext password, checks it against
// creds and turns it into ServerKeys (the password itself is dropped
// unless the stored form was plaintext).
func authPasswordKeys(conn Conn, creds *Credentials) (*ServerKeys, error) {
	if err := conn.Send(&pgproto3.AuthenticationCleartextPassword{}); err != nil {
		return nil, fmt.Errorf("auth: sending password request: %w", err)
	}
	pm, err := receive[*pgproto3.PasswordMessage](conn, pgproto3.AuthTypeCleartextPassword)
	if err != nil {
		return nil, err
	}
	if pm.Password == "" {
		return nil, ErrEmptyPassword
	}
	switch {
	case creds.hasPlaintext:
		a, b := sha256.Sum256([]byte(pm.Password)), sha256.Sum256([]byte(creds.plaintext))
		if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			return nil, ErrWrongPassword
		}
		return &ServerKeys{md5Hash: creds.md5Hash, password: creds.plaintext}, nil
	case creds.hasSCRAM:
		ck, err := scramClientKey(pm.Password, []byte(creds.scram.Salt), creds.scram.Iters)
		if err != nil {
			return nil, ErrWrongPassword
		}
		stored := sha256.Sum256(ck)
		if !hmac.Equal(stored[:], creds.scram.StoredKey) {
			return nil, ErrWrongPassword
		}
		return creds.scramKeys(ck), nil
	case creds.md5Hash != "":
		if !constantTimeEqual(md5Hash(pm.Password, creds.user), creds.md5Hash) {
			return nil, ErrWrongPassword
		}
		return &ServerKeys{md5Hash: creds.md5Hash}, nil
	}
	return nil, ErrWrongPassword
}

// scramClientKey is HMAC(PBKDF2(SASLprep(password), salt, iters), "Client
// Key"), falling back to the raw password when SASLprep rejects it, as
// PostgreSQL and newSCRAMClient do.
func scramClientKey(password string, salt []byte, iters int) ([]byte, error) {
	if p, err := stringprep.SASLprep.Prepare(password); err == nil {
		password = p
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iters, sha256.Size)
	if err != nil {
		return nil, err
	}
	return hmacSHA256(salted, []byte("Client Key")), nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// recoverClientKey computes ClientKey = ClientProof XOR HMAC(StoredKey,
// AuthMessage) from a SCRAM exchange and checks H(ClientKey) = StoredKey.
// AuthMessage is client-first-message-bare "," server-first-message ","
// client-final-message-without-proof (RFC 5802, section 3).
func recoverClientKey(tr scramTranscript, storedKey []byte) ([]byte, error) {
	bare, err := clientFirstBare(tr.clientFirst)
	if err != nil {
		return nil, err
	}
	withoutProof, proof, err := splitProof(tr.clientFinal)
	if err != nil {
		return nil, err
	}
	if len(proof) != sha256.Size || len(storedKey) != sha256.Size {
		return nil, errors.New("SCRAM proof or StoredKey has the wrong length")
	}
	sig := hmacSHA256(storedKey, []byte(bare+","+tr.serverFirst+","+withoutProof))
	ck := make([]byte, sha256.Size)
	subtle.XORBytes(ck, proof, sig)
	got := sha256.Sum256(ck)
	if !hmac.Equal(got[:], storedKey) {
		return nil, errors.New("SCRAM proof does not match the StoredKey")
	}
	return ck, nil
}

// clientFirstBare strips the GS2 header ("n,," or "y,," or "n,a=authzid,")
// from a client-first-message.
func clientFirstBare(clientFirst string) (string, error) {
	_, rest, ok := strings.Cut(clientFirst, ",")
	if !ok {
		return "", errors.New("client-first-message has no GS2 header")
	}
	_, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return "", errors.New("client-first-message has no GS2 header")
	}
	return bare, nil
}

// splitProof splits a client-final-message into the part before ",p=" and
// the decoded proof (p= is always the last attribute).
func splitProof(clientFinal string) (withoutProof string, proof []byte, err error) {
	i := strings.LastIndex(clientFinal, ",p=")
	if i < 0 {
		return "", nil, errors.New("client-final-message has no proof")
	}
	proof, err = base64.StdEncoding.DecodeString(clientFinal[i+len(",p="):])
	if err != nil {
		return "", nil, errors.New("client-final-message proof is not base64")
	}
	return clientFinal[:i], proof, nil
}

// LoginKeys is Login for a user sluice holds ServerKeys for instead of a
// password: SCRAM with the ClientKey (the server's salt and iteration
// count must be the verifier's, and its signature is checked with the
// verifier's ServerKey), md5 with the hash, cleartext only when the stored
// password was plaintext. Everything else is as in Login.
func LoginKeys(conn ServerConn, user string, keys *ServerKeys) error {
	if keys == nil {
		return Login(conn, user, "")
	}
	if keys.password != "" {
		return Login(conn, user, keys.password)
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
			return fmt.Errorf("auth: server requested a cleartext password for user %q, but sluice only holds the keys recovered from the client's login (auth_query): use md5 or scram-sha-256 in pg_hba.conf", user)
		case *pgproto3.AuthenticationMD5Password:
			if keys.md5Hash == "" {
				return fmt.Errorf("auth: server requested md5 authentication for user %q, but the password looked up with auth_query is a SCRAM verifier", user)
			}
			if err := conn.Send(&pgproto3.PasswordMessage{Password: md5Response(keys.md5Hash, m.Salt)}); err != nil {
				return fmt.Errorf("auth: sending password to server: %w", err)
			}
		case *pgproto3.AuthenticationSASL:
			if !slices.Contains(m.AuthMechanisms, scramMechanism) {
				return fmt.Errorf("auth: server offers SASL mechanisms %v but sluice supports only %s (no channel binding)", m.AuthMechanisms, scramMechanism)
			}
			if keys.clientKey == nil {
				return fmt.Errorf("auth: server requested SCRAM authentication for user %q, but the password looked up with auth_query is an md5 hash", user)
			}
			if err := loginSCRAMKeys(conn, keys); err != nil {
				return err
			}
		case *pgproto3.AuthenticationGSS, *pgproto3.AuthenticationGSSContinue:
			return errors.New("auth: server requested GSSAPI authentication, which sluice does not support")
		default:
			return fmt.Errorf("auth: unexpected %T from server during authentication", msg)
		}
	}
}

// loginSCRAMKeys runs the client side of SCRAM-SHA-256 with a ClientKey
// instead of a password, by hand (RFC 5802/7677): the proof is
// ClientKey XOR HMAC(H(ClientKey), AuthMessage).
func loginSCRAMKeys(conn ServerConn, k *ServerKeys) error {
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("auth: generating SCRAM nonce: %w", err)
	}
	nonce := base64.StdEncoding.EncodeToString(raw[:])
	bare := "n=,r=" + nonce
	if err := conn.Send(&pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: []byte("n,," + bare)}); err != nil {
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
	serverFirst := string(cont.Data)
	sf, err := parseServerFirst(serverFirst)
	if err != nil {
		return fmt.Errorf("auth: invalid SCRAM server-first-message: %w", err)
	}
	if !strings.HasPrefix(sf.nonce, nonce) || len(sf.nonce) == len(nonce) {
		return errors.New("auth: invalid SCRAM server-first-message: the server's nonce does not extend sluice's")
	}
	if !hmac.Equal(sf.salt, k.salt) || sf.iters != k.iters {
		return errors.New("auth: the server's SCRAM salt or iteration count differs from the verifier auth_query returned (was the password just changed?)")
	}
	withoutProof := "c=biws,r=" + sf.nonce
	authMessage := []byte(bare + "," + serverFirst + "," + withoutProof)
	storedKey := sha256.Sum256(k.clientKey)
	proof := make([]byte, sha256.Size)
	subtle.XORBytes(proof, k.clientKey, hmacSHA256(storedKey[:], authMessage))
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	if err := conn.Send(&pgproto3.SASLResponse{Data: []byte(final)}); err != nil {
		return fmt.Errorf("auth: sending SASL response: %w", err)
	}
	msg, err = receiveServer(conn)
	if err != nil {
		return err
	}
	fin, ok := msg.(*pgproto3.AuthenticationSASLFinal)
	if !ok {
		return fmt.Errorf("auth: expected AuthenticationSASLFinal from server, got %T", msg)
	}
	v, ok := strings.CutPrefix(string(fin.Data), "v=")
	if !ok {
		return fmt.Errorf("auth: SCRAM server-final-message rejected: %q", truncate(string(fin.Data), 80))
	}
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(sig, hmacSHA256(k.serverKey, authMessage)) {
		return errors.New("auth: server failed to prove it knows the SCRAM verifier")
	}
	return nil
}

type serverFirst struct {
	nonce string
	salt  []byte
	iters int
}

// parseServerFirst parses "r=<nonce>,s=<base64 salt>,i=<iterations>[,ext...]"
// strictly: the three attributes in that order, a mandatory extension
// ("m=") refused, iterations within 1..maxServerSCRAMIterations.
func parseServerFirst(s string) (serverFirst, error) {
	var sf serverFirst
	if strings.HasPrefix(s, "m=") {
		return sf, errors.New("mandatory SCRAM extensions are not supported")
	}
	parts := strings.SplitN(s, ",", 4)
	if len(parts) < 3 {
		return sf, errors.New("want r=...,s=...,i=...")
	}
	r, ok1 := strings.CutPrefix(parts[0], "r=")
	salt, ok2 := strings.CutPrefix(parts[1], "s=")
	iter, ok3 := strings.CutPrefix(parts[2], "i=")
	if !ok1 || !ok2 || !ok3 || r == "" {
		return sf, errors.New("want r=...,s=...,i=...")
	}
	for _, c := range []byte(r) {
		if c < 0x21 || c > 0x7e || c == ',' {
			return sf, errors.New("nonce has characters outside printable ASCII")
		}
	}
	sb, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || len(sb) == 0 {
		return sf, errors.New("salt is not valid non-empty base64")
	}
	n, err := strconv.Atoi(iter)
	if err != nil || n < 1 || n > maxServerSCRAMIterations {
		return sf, fmt.Errorf("iteration count must be between 1 and %d", maxServerSCRAMIterations)
	}
	return serverFirst{nonce: r, salt: sb, iters: n}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
