package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// fakePostgres is a tiny PostgreSQL server that authenticates clients with
// Authenticate and then idles until the client terminates. Each accepted
// connection's Authenticate result is delivered on results.
type fakePostgres struct {
	ln      net.Listener
	method  Method
	creds   map[string]*Credentials
	results chan error
	wg      sync.WaitGroup
}

func startFakePostgres(t *testing.T, method Method, creds map[string]*Credentials) *fakePostgres {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fp := &fakePostgres{ln: ln, method: method, creds: creds, results: make(chan error, 16)}
	fp.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fp.wg.Go(func() { fp.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		fp.wg.Wait()
	})
	return fp
}

func (fp *fakePostgres) serve(c net.Conn) {
	defer c.Close()
	b := pgproto3.NewBackend(c, c)
	msg, err := b.ReceiveStartupMessage()
	if err != nil {
		fp.results <- err
		return
	}
	if _, ok := msg.(*pgproto3.SSLRequest); ok {
		if _, err := c.Write([]byte{'N'}); err != nil {
			fp.results <- err
			return
		}
		if msg, err = b.ReceiveStartupMessage(); err != nil {
			fp.results <- err
			return
		}
	}
	startup, ok := msg.(*pgproto3.StartupMessage)
	if !ok {
		fp.results <- fmt.Errorf("unexpected %T", msg)
		return
	}
	user := startup.Parameters["user"]
	authErr := Authenticate(BackendConn{B: b}, fp.method, user, fp.creds[user])
	fp.results <- authErr
	switch {
	case authErr == nil:
		b.Send(&pgproto3.AuthenticationOk{})
		b.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "17.0"})
		b.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 2}})
		b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if b.Flush() != nil {
			return
		}
		for { // idle until Terminate or EOF
			m, err := b.Receive()
			if _, ok := m.(*pgproto3.Terminate); err != nil || ok {
				return
			}
		}
	case errors.Is(authErr, ErrWrongPassword):
		b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01",
			Message: fmt.Sprintf("password authentication failed for user %q", user)})
	default:
		b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: authErr.Error()})
	}
	_ = b.Flush()
}

func (fp *fakePostgres) connect(t *testing.T, user, password string) (error, error) {
	t.Helper()
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: fp.ln.Addr().String(),
		Path: "/db", RawQuery: "sslmode=disable"}
	conn, err := pgconn.Connect(context.Background(), u.String())
	if err == nil {
		require.NoError(t, conn.Close(context.Background()))
	}
	return <-fp.results, err
}

// TestInteropPgconn proves sluice's server side works with pgx's client:
// SCRAM (including the empty SCRAM user name pgx sends), md5 and password,
// with each stored password form.
func TestInteropPgconn(t *testing.T) {
	creds := map[string]*Credentials{
		"plain":    mustCreds(t, "plain", "app_pw"),
		"verifier": mustCreds(t, "verifier", appPwVerifier),
		"hashed":   mustCreds(t, "hashed", md5Hash("app_pw", "hashed")),
	}
	for _, method := range []Method{MethodSCRAM, MethodMD5, MethodPassword} {
		fp := startFakePostgres(t, method, creds)
		for user := range creds {
			t.Run(string(method)+"/"+user, func(t *testing.T) {
				serverErr, clientErr := fp.connect(t, user, "app_pw")
				require.NoError(t, serverErr)
				require.NoError(t, clientErr)

				serverErr, clientErr = fp.connect(t, user, "not_app_pw")
				require.ErrorIs(t, serverErr, ErrWrongPassword)
				var pgErr *pgconn.PgError
				require.ErrorAs(t, clientErr, &pgErr)
				require.Equal(t, "28P01", pgErr.Code)
			})
		}
		t.Run(string(method)+"/unknown user", func(t *testing.T) {
			serverErr, clientErr := fp.connect(t, "nobody", "app_pw")
			require.ErrorIs(t, serverErr, ErrWrongPassword)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, clientErr, &pgErr)
			require.Equal(t, "28P01", pgErr.Code)
		})
	}

	fp := startFakePostgres(t, MethodTrust, nil)
	serverErr, clientErr := fp.connect(t, "anyone", "")
	require.NoError(t, serverErr)
	require.NoError(t, clientErr)
}
