package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// keysExchange runs AuthenticateKeys on one end of a net.Pipe and client
// on the other, and returns what AuthenticateKeys returned.
func keysExchange(t *testing.T, method Method, creds *Credentials, client func(f *pgproto3.Frontend) error) (*ServerKeys, error, error) {
	t.Helper()
	srv, cli := net.Pipe()
	conn := BackendConn{B: pgproto3.NewBackend(srv, srv)}
	var keys *ServerKeys
	var serverErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer srv.Close()
		keys, serverErr = AuthenticateKeys(conn, method, "app", creds)
		if serverErr == nil {
			_ = conn.Send(&pgproto3.AuthenticationOk{})
		} else {
			_ = conn.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"})
		}
	})
	clientErr := client(pgproto3.NewFrontend(cli, cli))
	cli.Close()
	wg.Wait()
	return keys, serverErr, clientErr
}

// keysClient logs in with LoginKeys.
func keysClient(keys *ServerKeys) func(f *pgproto3.Frontend) error {
	return func(f *pgproto3.Frontend) error { return LoginKeys(FrontendConn{F: f}, "app", keys) }
}

// TestAuthenticateKeysThenLogin is auth_query end to end without a
// server: a client logs in to AuthenticateKeys with the password, and the
// keys recovered from that login then log in to a server that holds the
// same stored password, for every method and stored form.
func TestAuthenticateKeysThenLogin(t *testing.T) {
	forms := map[string]string{"verifier": appPwVerifier, "md5hash": appPwMD5, "plaintext": "app_pw"}
	// What PostgreSQL would ask sluice for, given the stored form.
	serverMethod := map[string]Method{"verifier": MethodSCRAM, "md5hash": MethodMD5, "plaintext": MethodSCRAM}
	for _, method := range []Method{MethodSCRAM, MethodMD5, MethodPassword} {
		for form, stored := range forms {
			t.Run(string(method)+"/"+form, func(t *testing.T) {
				creds := mustCreds(t, "app", stored)
				keys, serverErr, clientErr := keysExchange(t, method, creds, loginClient("app", "app_pw"))
				require.NoError(t, serverErr)
				require.NoError(t, clientErr)
				require.NotNil(t, keys)

				res := runExchange(t, serverMethod[form], "app", creds, keysClient(keys))
				require.NoError(t, res.serverErr, "the server accepts the recovered keys")
				require.NoError(t, res.clientErr)

				_, serverErr, clientErr = keysExchange(t, method, creds, loginClient("app", "wrong"))
				require.ErrorIs(t, serverErr, ErrWrongPassword)
				require.Error(t, clientErr)
			})
		}
	}
}

func TestAuthenticateKeysUnknownUserIsAWrongPassword(t *testing.T) {
	for _, method := range []Method{MethodSCRAM, MethodMD5, MethodPassword, MethodTrust} {
		keys, serverErr, _ := keysExchange(t, method, nil, loginClient("app", "app_pw"))
		require.ErrorIs(t, serverErr, ErrWrongPassword, method)
		require.Nil(t, keys)
	}
	// The unknown user is asked for SCRAM, as a known SCRAM user is.
	res := runExchange(t, MethodSCRAM, "ghost", nil, loginClient("ghost", "pw"))
	require.ErrorIs(t, res.serverErr, ErrWrongPassword)
	require.Equal(t, []string{reqSASL, "*pgproto3.AuthenticationSASLContinue"}, res.sent)
}

func TestRecoveredClientKeyIsTheUsersClientKey(t *testing.T) {
	creds := mustCreds(t, "app", appPwVerifier)
	keys, err, _ := keysExchange(t, MethodSCRAM, creds, loginClient("app", "app_pw"))
	require.NoError(t, err)
	want, err := scramClientKey("app_pw", []byte(creds.scram.Salt), creds.scram.Iters)
	require.NoError(t, err)
	require.Equal(t, want, keys.clientKey)
	stored := sha256.Sum256(keys.clientKey)
	require.Equal(t, creds.scram.StoredKey, stored[:])
}

func TestServerKeysAreNeverPrinted(t *testing.T) {
	creds := mustCreds(t, "app", appPwVerifier)
	keys, err, _ := keysExchange(t, MethodSCRAM, creds, loginClient("app", "app_pw"))
	require.NoError(t, err)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "keys", keys)
	for _, out := range []string{fmt.Sprint(keys), fmt.Sprintf("%v %+v %s", keys, keys, keys), buf.String()} {
		require.NotContains(t, out, base64.StdEncoding.EncodeToString(keys.clientKey))
		require.NotContains(t, out, fmt.Sprint(keys.clientKey[:4]))
		require.Contains(t, out, "<SCRAM client key>")
	}
}

func TestLoginKeysRefusals(t *testing.T) {
	creds := mustCreds(t, "app", appPwVerifier)
	keys, err, _ := keysExchange(t, MethodSCRAM, creds, loginClient("app", "app_pw"))
	require.NoError(t, err)

	// The server holds a newer verifier (new salt): sluice says so rather
	// than sending a proof that cannot work.
	fresh := mustCreds(t, "app", mustCreds(t, "app", "app_pw").SCRAMVerifier())
	res := runExchange(t, MethodSCRAM, "app", fresh, keysClient(keys))
	require.ErrorContains(t, res.clientErr, "salt or iteration count differs")

	// SCRAM keys cannot answer md5 or cleartext requests.
	err = runServer(t, "app", "", func(b *pgproto3.Backend) {
		send(t, b, &pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}})
	})
	require.Error(t, err) // Login with no password; now LoginKeys:
	for _, req := range []pgproto3.BackendMessage{&pgproto3.AuthenticationMD5Password{}, &pgproto3.AuthenticationCleartextPassword{}} {
		err := runServerKeys(t, keys, func(b *pgproto3.Backend) { send(t, b, req) })
		require.ErrorContains(t, err, "auth_query")
	}

	// md5 keys cannot answer SCRAM.
	md5Keys, err, _ := keysExchange(t, MethodMD5, mustCreds(t, "app", appPwMD5), loginClient("app", "app_pw"))
	require.NoError(t, err)
	err = runServerKeys(t, md5Keys, func(b *pgproto3.Backend) {
		send(t, b, &pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}})
	})
	require.ErrorContains(t, err, "md5 hash")

	// A server that knows the salt but not the verifier cannot fake the
	// final signature.
	err = LoginKeys(&scriptedServer{serverFirst: []byte("r=NONCEsrv,s=c2x1aWNlLXRlc3Qtc2FsdA==,i=4096"),
		serverFinal: []byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")}, "app", keys)
	require.ErrorContains(t, err, "failed to prove")

	// Server errors come back as *ServerError.
	err = runServerKeys(t, keys, func(b *pgproto3.Backend) {
		send(t, b, &pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "nope"})
	})
	var se *ServerError
	require.True(t, errors.As(err, &se))
}

// runServerKeys is runServer for LoginKeys.
func runServerKeys(t *testing.T, keys *ServerKeys, server func(b *pgproto3.Backend)) error {
	t.Helper()
	srv, cli := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer srv.Close()
		server(pgproto3.NewBackend(srv, srv))
	})
	err := LoginKeys(FrontendConn{F: pgproto3.NewFrontend(cli, cli)}, "app", keys)
	cli.Close()
	wg.Wait()
	return err
}

func TestParseServerFirst(t *testing.T) {
	sf, err := parseServerFirst("r=abcXYZ,s=c2FsdA==,i=4096")
	require.NoError(t, err)
	require.Equal(t, serverFirst{nonce: "abcXYZ", salt: []byte("salt"), iters: 4096}, sf)
	_, err = parseServerFirst("r=abc,s=c2FsdA==,i=4096,x=ext")
	require.NoError(t, err, "optional extensions after i= are ignored")
	for _, bad := range []string{"", "m=x,r=a,s=c2FsdA==,i=1", "r=a,s=c2FsdA==", "s=c2FsdA==,r=a,i=1", "r=,s=c2FsdA==,i=1",
		"r=a,s=!!,i=1", "r=a,s=,i=1", "r=a,s=c2FsdA==,i=0", "r=a,s=c2FsdA==,i=99999999999", "r=a b,s=c2FsdA==,i=1"} {
		_, err := parseServerFirst(bad)
		require.Error(t, err, bad)
	}
}

// FuzzLoginSCRAMKeys: LoginKeys's hand-written SCRAM client never panics
// and never succeeds against a server that does not know the verifier.
func FuzzLoginSCRAMKeys(f *testing.F) {
	creds := mustCreds(f, "app", appPwVerifier)
	ck, err := scramClientKey("app_pw", []byte(creds.scram.Salt), creds.scram.Iters)
	if err != nil {
		f.Fatal(err)
	}
	keys := creds.scramKeys(ck)
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal []byte) {
		if err := LoginKeys(&scriptedServer{serverFirst: serverFirst, serverFinal: serverFinal}, "app", keys); err == nil {
			t.Fatalf("login succeeded against a forged server: first=%q final=%q", serverFirst, serverFinal)
		}
	})
}

// FuzzRecoverClientKey: the transcript parser never panics, and a key it
// returns always hashes to the StoredKey.
func FuzzRecoverClientKey(f *testing.F) {
	stored := mustCreds(f, "app", appPwVerifier).scram.StoredKey
	f.Fuzz(func(t *testing.T, clientFirst, serverFirst, clientFinal string) {
		ck, err := recoverClientKey(scramTranscript{clientFirst, serverFirst, clientFinal}, stored)
		if err != nil {
			return
		}
		if got := sha256.Sum256(ck); !bytes.Equal(got[:], stored) {
			t.Fatalf("returned a key that does not match the StoredKey")
		}
		if !strings.Contains(clientFinal, ",p=") {
			t.Fatalf("accepted a client-final-message without a proof")
		}
	})
}
