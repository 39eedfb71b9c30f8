package auth

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// receivePassword reads the next 'p' message as the given auth type.
func receivePassword(t *testing.T, b *pgproto3.Backend, authType uint32) pgproto3.FrontendMessage {
	t.Helper()
	require.NoError(t, b.SetAuthType(authType))
	msg, err := b.Receive()
	require.NoError(t, err)
	return msg
}

func send(t *testing.T, b *pgproto3.Backend, msgs ...pgproto3.BackendMessage) {
	t.Helper()
	for _, m := range msgs {
		b.Send(m)
	}
	require.NoError(t, b.Flush())
}

func TestLoginCleartextAndMD5(t *testing.T) {
	var got string
	err := runServer(t, "app", "app_pw", func(b *pgproto3.Backend) {
		send(t, b, &pgproto3.NoticeResponse{Message: "hello"}, &pgproto3.AuthenticationCleartextPassword{})
		got = receivePassword(t, b, pgproto3.AuthTypeCleartextPassword).(*pgproto3.PasswordMessage).Password
		send(t, b, &pgproto3.AuthenticationOk{})
	})
	require.NoError(t, err)
	require.Equal(t, "app_pw", got)

	salt := [4]byte{1, 2, 3, 4}
	err = runServer(t, "app", "app_pw", func(b *pgproto3.Backend) {
		send(t, b, &pgproto3.AuthenticationMD5Password{Salt: salt})
		got = receivePassword(t, b, pgproto3.AuthTypeMD5Password).(*pgproto3.PasswordMessage).Password
		send(t, b, &pgproto3.AuthenticationOk{})
	})
	require.NoError(t, err)
	require.Equal(t, handMD5("app_pw", "app", salt), got)
}

func TestLoginTrust(t *testing.T) {
	err := runServer(t, "app", "", func(b *pgproto3.Backend) {
		send(t, b, &pgproto3.AuthenticationOk{}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	})
	require.NoError(t, err, "Login consumes only AuthenticationOk")
}

func TestLoginServerError(t *testing.T) {
	err := runServer(t, "app", "app_pw", func(b *pgproto3.Backend) {
		send(t, b, &pgproto3.ErrorResponse{Severity: "FATAL", Code: "3D000", Message: `database "x" does not exist`})
	})
	var se *ServerError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "FATAL", se.Response.Severity)
	require.Equal(t, "3D000", se.Response.Code)
	require.Equal(t, `database "x" does not exist`, se.Response.Message)
	require.Contains(t, se.Error(), "3D000")
}

func TestLoginNoPasswordConfigured(t *testing.T) {
	for _, req := range []pgproto3.BackendMessage{
		&pgproto3.AuthenticationCleartextPassword{},
		&pgproto3.AuthenticationMD5Password{},
		&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}},
	} {
		err := runServer(t, "app", "", func(b *pgproto3.Backend) { send(t, b, req) })
		require.ErrorContains(t, err, `no server password is configured for that user`)
		require.ErrorContains(t, err, `"app"`)
	}
}

func TestLoginUnsupported(t *testing.T) {
	for req, want := range map[pgproto3.BackendMessage]string{
		&pgproto3.AuthenticationGSS{}: "GSSAPI",
		&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS"}}: "channel binding",
		&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"OAUTHBEARER"}}:        "OAUTHBEARER",
		&pgproto3.ReadyForQuery{TxStatus: 'I'}:                                       "unexpected",
	} {
		err := runServer(t, "app", "app_pw", func(b *pgproto3.Backend) { send(t, b, req) })
		require.ErrorContains(t, err, want)
	}
}

// fakeSCRAMServer plays a SCRAM server that does not know the password: it
// answers with serverFirst (given the client nonce) and then serverFinal.
func fakeSCRAMServer(t *testing.T, serverFirst func(clientNonce string) string, serverFinal string) func(b *pgproto3.Backend) {
	return func(b *pgproto3.Backend) {
		send(t, b, &pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}})
		first := receivePassword(t, b, pgproto3.AuthTypeSASL).(*pgproto3.SASLInitialResponse)
		require.Equal(t, "SCRAM-SHA-256", first.AuthMechanism)
		require.True(t, strings.HasPrefix(string(first.Data), "n,,n=,r="), "libpq-style client-first: %q", first.Data)
		nonce := regexp.MustCompile(`r=([^,]+)`).FindStringSubmatch(string(first.Data))[1]
		send(t, b, &pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst(nonce))})
		if serverFinal == "" {
			return
		}
		receivePassword(t, b, pgproto3.AuthTypeSASLContinue)
		send(t, b, &pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)}, &pgproto3.AuthenticationOk{})
	}
}

func TestLoginSCRAMRejectsBadServer(t *testing.T) {
	salt := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	okFirst := func(n string) string { return "r=" + n + "srv,s=" + salt + ",i=4096" }
	zeroSig := "v=" + base64.StdEncoding.EncodeToString(make([]byte, 32))

	err := runServer(t, "app", "app_pw", fakeSCRAMServer(t, okFirst, zeroSig))
	require.ErrorContains(t, err, "SCRAM")
	err = runServer(t, "app", "app_pw", fakeSCRAMServer(t, okFirst, "e=invalid-proof"))
	require.ErrorContains(t, err, "invalid-proof")

	err = runServer(t, "app", "app_pw", fakeSCRAMServer(t, func(n string) string {
		return "r=" + n + "srv,s=" + salt + ",i=2000000000"
	}, ""))
	require.ErrorContains(t, err, "too many SCRAM iterations")

	err = runServer(t, "app", "app_pw", fakeSCRAMServer(t, func(string) string {
		return "r=notmynonce,s=" + salt + ",i=4096"
	}, ""))
	require.ErrorContains(t, err, "invalid SCRAM server-first-message")
}

// TestLoginSCRAMLowIterations: like libpq, accept a server configured with
// fewer than 4096 iterations (PostgreSQL 16 scram_iterations).
func TestLoginSCRAMLowIterations(t *testing.T) {
	creds := mustCreds(t, "app", "SCRAM-SHA-256$1:c2FsdA==$"+
		strings.Repeat("A", 43)+"=:"+strings.Repeat("A", 43)+"=")
	// Re-derive the keys for app_pw with 1 iteration so the verifier is real.
	sc, err := deriveSCRAM("app_pw", creds.scram.KeyFactors)
	require.NoError(t, err)
	creds.scram = sc
	res := runExchange(t, MethodSCRAM, "app", creds, loginClient("app", "app_pw"))
	require.NoError(t, res.serverErr)
	require.NoError(t, res.clientErr)
}

// TestLoginVerifierRoundTrip: credentials loaded from an independently
// computed verifier accept Login with the plaintext.
func TestLoginVerifierRoundTrip(t *testing.T) {
	for pw, v := range map[string]string{"app_pw": appPwVerifier, "pencil": pencilVerifier} {
		res := runExchange(t, MethodSCRAM, "app", mustCreds(t, "app", v), loginClient("app", pw))
		require.NoError(t, res.serverErr, pw)
		require.NoError(t, res.clientErr, pw)
	}
}

func TestLoginSASLprep(t *testing.T) {
	// U+00AA (feminine ordinal) SASLpreps to "a"; U+0007 is prohibited, so the
	// raw bytes are used, as PostgreSQL does.
	for _, pw := range []string{"p\u00aass", "bell\u0007", "\xff\xfe"} {
		creds := mustCreds(t, "app", pw)
		res := runExchange(t, MethodSCRAM, "app", creds, loginClient("app", pw))
		require.NoError(t, res.serverErr, "%q", pw)
		res = runExchange(t, MethodPassword, "app", mustCreds(t, "app", creds.SCRAMVerifier()), loginClient("app", pw))
		require.NoError(t, res.serverErr, "%q", pw)
	}
	// "p\u00aass" and "pass" are the same SCRAM password after SASLprep.
	res := runExchange(t, MethodSCRAM, "app", mustCreds(t, "app", "p\u00aass"), loginClient("app", "pass"))
	require.NoError(t, res.serverErr)
}
