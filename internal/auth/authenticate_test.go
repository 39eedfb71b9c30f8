package auth

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

const (
	reqSASL  = "*pgproto3.AuthenticationSASL"
	reqMD5   = "*pgproto3.AuthenticationMD5Password"
	reqClear = "*pgproto3.AuthenticationCleartextPassword"
)

// TestAuthenticateWithLogin drives Authenticate with this package's Login for
// every method and every stored password form, right and wrong password, and
// checks which exchange was chosen (the PgBouncer-style fallbacks).
func TestAuthenticateWithLogin(t *testing.T) {
	forms := map[string]*Credentials{
		"plaintext": mustCreds(t, "app", "app_pw"),
		"md5hash":   mustCreds(t, "app", appPwMD5),
		"verifier":  mustCreds(t, "app", appPwVerifier),
	}
	want := map[Method]map[string]string{
		MethodSCRAM:    {"plaintext": reqSASL, "md5hash": reqMD5, "verifier": reqSASL},
		MethodMD5:      {"plaintext": reqMD5, "md5hash": reqMD5, "verifier": reqSASL},
		MethodPassword: {"plaintext": reqClear, "md5hash": reqClear, "verifier": reqClear},
	}
	for method, byForm := range want {
		for form, request := range byForm {
			t.Run(string(method)+"/"+form, func(t *testing.T) {
				ok := runExchange(t, method, "app", forms[form], loginClient("app", "app_pw"))
				require.NoError(t, ok.serverErr)
				require.NoError(t, ok.clientErr)
				require.Equal(t, request, ok.sent[0])
				if request == reqSASL {
					require.Equal(t, []string{reqSASL, "*pgproto3.AuthenticationSASLContinue", "*pgproto3.AuthenticationSASLFinal"}, ok.sent)
				}

				bad := runExchange(t, method, "app", forms[form], loginClient("app", "wrong_pw"))
				require.ErrorIs(t, bad.serverErr, ErrWrongPassword)
				var se *ServerError
				require.ErrorAs(t, bad.clientErr, &se)
				require.Equal(t, "28P01", se.Response.Code)
				require.Equal(t, "FATAL", se.Response.Severity)
				require.Equal(t, `password authentication failed for user "app"`, se.Response.Message)
				require.NotContains(t, bad.sent, "*pgproto3.AuthenticationSASLFinal", "no SASLFinal after a failed proof")
			})
		}
	}
}

func TestAuthenticateTrust(t *testing.T) {
	// Login needs no password: the first message it sees is AuthenticationOk.
	res := runExchange(t, MethodTrust, "app", nil, loginClient("app", ""))
	require.NoError(t, res.serverErr)
	require.NoError(t, res.clientErr)
	require.Empty(t, res.sent)
}

func TestAuthenticateUnknownMethod(t *testing.T) {
	res := runExchange(t, Method("ident"), "app", mustCreds(t, "app", "app_pw"), loginClient("app", "app_pw"))
	require.Error(t, res.serverErr)
	require.NotErrorIs(t, res.serverErr, ErrWrongPassword)
	require.Error(t, res.clientErr)
}

// TestAuthenticateUnknownUser checks the mock exchange: it looks like a real
// one (stable salt per user) and always fails with ErrWrongPassword.
func TestAuthenticateUnknownUser(t *testing.T) {
	saltRe := regexp.MustCompile(`,s=([^,]+),`)
	serverFirst := func() string {
		var got string
		res := runExchange(t, MethodSCRAM, "ghost", nil, func(f *pgproto3.Frontend) error {
			// Record the salt the server offers, then answer with a bogus proof.
			_, err := f.Receive()
			require.NoError(t, err)
			f.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abc")})
			require.NoError(t, f.Flush())
			msg, err := f.Receive()
			require.NoError(t, err)
			cont := msg.(*pgproto3.AuthenticationSASLContinue)
			got = string(cont.Data)
			nonce := regexp.MustCompile(`r=([^,]+)`).FindStringSubmatch(got)[1]
			f.Send(&pgproto3.SASLResponse{Data: []byte("c=biws,r=" + nonce + ",p=" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")})
			require.NoError(t, f.Flush())
			msg, err = f.Receive()
			require.NoError(t, err)
			require.IsType(t, &pgproto3.ErrorResponse{}, msg)
			return nil
		})
		require.ErrorIs(t, res.serverErr, ErrWrongPassword)
		return saltRe.FindStringSubmatch(got)[1]
	}
	require.Equal(t, serverFirst(), serverFirst(), "mock salt is stable per user")

	for _, m := range []Method{MethodSCRAM, MethodMD5, MethodPassword} {
		res := runExchange(t, m, "ghost", nil, loginClient("ghost", "anything"))
		require.ErrorIs(t, res.serverErr, ErrWrongPassword, m)
		var se *ServerError
		require.ErrorAs(t, res.clientErr, &se, m)
	}
}

// handMD5 computes the md5 response independently of the package code.
func handMD5(password, user string, salt [4]byte) string {
	inner := md5.Sum([]byte(password + user))
	outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), salt[:]...))
	return "md5" + hex.EncodeToString(outer[:])
}

// passwordClient is a hand-built client answering one password request.
func passwordClient(t *testing.T, user, password string) func(f *pgproto3.Frontend) error {
	return func(f *pgproto3.Frontend) error {
		msg, err := f.Receive()
		require.NoError(t, err)
		switch m := msg.(type) {
		case *pgproto3.AuthenticationMD5Password:
			f.Send(&pgproto3.PasswordMessage{Password: handMD5(password, user, m.Salt)})
		case *pgproto3.AuthenticationCleartextPassword:
			f.Send(&pgproto3.PasswordMessage{Password: password})
		default:
			t.Errorf("unexpected %T", msg)
		}
		require.NoError(t, f.Flush())
		msg, err = f.Receive()
		require.NoError(t, err)
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			return &ServerError{Response: e}
		}
		require.IsType(t, &pgproto3.AuthenticationOk{}, msg)
		return nil
	}
}

func TestAuthenticateHandBuiltFrames(t *testing.T) {
	for _, method := range []Method{MethodMD5, MethodPassword} {
		for _, stored := range []string{"app_pw", appPwMD5} {
			creds := mustCreds(t, "app", stored)
			res := runExchange(t, method, "app", creds, passwordClient(t, "app", "app_pw"))
			require.NoError(t, res.serverErr, "%s %s", method, stored)
			require.NoError(t, res.clientErr)

			res = runExchange(t, method, "app", creds, passwordClient(t, "app", "App_pw"))
			require.ErrorIs(t, res.serverErr, ErrWrongPassword, "%s %s", method, stored)
			require.Error(t, res.clientErr)
		}
	}
	// Empty cleartext password is never accepted.
	res := runExchange(t, MethodPassword, "app", mustCreds(t, "app", "app_pw"), passwordClient(t, "app", ""))
	require.ErrorIs(t, res.serverErr, ErrWrongPassword)
}

// TestAuthenticateEmptyPassword: an empty PasswordMessage, in answer to a
// cleartext or md5 request, is ErrEmptyPassword (still a failed login)
// whether the user is known or not, as PostgreSQL checks for it before it
// looks at the role.
func TestAuthenticateEmptyPassword(t *testing.T) {
	for _, method := range []Method{MethodPassword, MethodMD5} {
		for _, creds := range []*Credentials{mustCreds(t, "app", "app_pw"), mustCreds(t, "app", appPwMD5), nil} {
			res := runExchange(t, method, "app", creds, sendAfter(t, &pgproto3.PasswordMessage{Password: ""}))
			require.ErrorIs(t, res.serverErr, ErrEmptyPassword, "%s known=%v", method, creds != nil)
			require.ErrorIs(t, res.serverErr, ErrWrongPassword)
			// The same through AuthenticateKeys (users found by auth_query).
			_, serverErr, _ := keysExchange(t, method, creds, sendAfter(t, &pgproto3.PasswordMessage{Password: ""}))
			require.ErrorIs(t, serverErr, ErrEmptyPassword, "keys %s known=%v", method, creds != nil)
		}
	}
}

// sendAfter returns a client that reads the auth request and answers with msgs.
func sendAfter(t *testing.T, msgs ...pgproto3.FrontendMessage) func(f *pgproto3.Frontend) error {
	return func(f *pgproto3.Frontend) error {
		if _, err := f.Receive(); err != nil {
			return err
		}
		for _, m := range msgs {
			f.Send(m)
			if err := f.Flush(); err != nil {
				return err
			}
			if _, ok := m.(*pgproto3.SASLInitialResponse); ok && len(msgs) > 1 {
				if _, err := f.Receive(); err != nil { // SASLContinue
					return err
				}
			}
		}
		_, err := f.Receive() // error response or EOF
		return err
	}
}

func TestAuthenticateProtocolViolations(t *testing.T) {
	creds := mustCreds(t, "app", "app_pw")
	first := &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=clientnonce")}
	for name, tc := range map[string]struct {
		method Method
		msgs   []pgproto3.FrontendMessage
	}{
		"wrong mechanism":       {MethodSCRAM, []pgproto3.FrontendMessage{&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256-PLUS", Data: first.Data}}},
		"garbage client-first":  {MethodSCRAM, []pgproto3.FrontendMessage{&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("\x00garbage")}}},
		"empty client-first":    {MethodSCRAM, []pgproto3.FrontendMessage{&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256"}}},
		"channel binding p":     {MethodSCRAM, []pgproto3.FrontendMessage{&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("p=tls-server-end-point,,n=,r=x")}}},
		"garbage client-final":  {MethodSCRAM, []pgproto3.FrontendMessage{first, &pgproto3.SASLResponse{Data: []byte("garbage")}}},
		"wrong nonce":           {MethodSCRAM, []pgproto3.FrontendMessage{first, &pgproto3.SASLResponse{Data: []byte("c=biws,r=other,p=AAAA")}}},
		"query instead of SASL": {MethodSCRAM, []pgproto3.FrontendMessage{&pgproto3.Query{String: "select 1"}}},
		"query instead of md5":  {MethodMD5, []pgproto3.FrontendMessage{&pgproto3.Query{String: "select 1"}}},
	} {
		t.Run(name, func(t *testing.T) {
			res := runExchange(t, tc.method, "app", creds, sendAfter(t, tc.msgs...))
			require.ErrorIs(t, res.serverErr, ErrProtocol)
			require.NotErrorIs(t, res.serverErr, ErrWrongPassword)
		})
	}

	t.Run("short proof", func(t *testing.T) {
		res := runExchange(t, MethodSCRAM, "app", creds, func(f *pgproto3.Frontend) error {
			_, err := f.Receive()
			require.NoError(t, err)
			f.Send(first)
			require.NoError(t, f.Flush())
			msg, err := f.Receive()
			require.NoError(t, err)
			nonce := regexp.MustCompile(`r=([^,]+)`).FindStringSubmatch(string(msg.(*pgproto3.AuthenticationSASLContinue).Data))[1]
			f.Send(&pgproto3.SASLResponse{Data: []byte("c=biws,r=" + nonce + ",p=AAAA")})
			require.NoError(t, f.Flush())
			_, err = f.Receive()
			return err
		})
		require.ErrorIs(t, res.serverErr, ErrProtocol)
	})
	t.Run("terminate", func(t *testing.T) {
		res := runExchange(t, MethodMD5, "app", creds, sendAfter(t, &pgproto3.Terminate{}))
		require.ErrorIs(t, res.serverErr, io.EOF)
		require.NotErrorIs(t, res.serverErr, ErrProtocol)
	})
	t.Run("client hangs up", func(t *testing.T) {
		res := runExchange(t, MethodSCRAM, "app", creds, func(f *pgproto3.Frontend) error {
			_, err := f.Receive()
			return err
		})
		require.Error(t, res.serverErr)
		require.False(t, errors.Is(res.serverErr, ErrProtocol) || errors.Is(res.serverErr, ErrWrongPassword))
	})
}

func TestParseMethod(t *testing.T) {
	for _, m := range []Method{MethodSCRAM, MethodMD5, MethodPassword, MethodTrust} {
		got, err := ParseMethod(string(m))
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
	_, err := ParseMethod("SCRAM")
	require.Error(t, err)
}
