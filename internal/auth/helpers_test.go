package auth

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recordingConn remembers the type of every message Authenticate sends.
type recordingConn struct {
	Conn
	mu   sync.Mutex
	sent []string
}

func (r *recordingConn) Send(msgs ...pgproto3.BackendMessage) error {
	r.mu.Lock()
	for _, m := range msgs {
		r.sent = append(r.sent, fmt.Sprintf("%T", m))
	}
	r.mu.Unlock()
	return r.Conn.Send(msgs...)
}

type exchangeResult struct {
	serverErr error    // what Authenticate returned
	clientErr error    // what the client function returned
	sent      []string // message types Authenticate sent
}

// runExchange runs Authenticate on one end of a net.Pipe, the way sluice's
// client handling would (AuthenticationOk on success, an ErrorResponse on
// failure), and client on the other end with a pgproto3.Frontend.
func runExchange(t *testing.T, method Method, user string, creds *Credentials, client func(f *pgproto3.Frontend) error) exchangeResult {
	t.Helper()
	srv, cli := net.Pipe()
	rec := &recordingConn{Conn: BackendConn{B: pgproto3.NewBackend(srv, srv)}}
	var res exchangeResult
	var wg sync.WaitGroup
	wg.Go(func() {
		defer srv.Close()
		res.serverErr = Authenticate(rec, method, user, creds)
		switch {
		case res.serverErr == nil:
			_ = rec.Conn.Send(&pgproto3.AuthenticationOk{})
		case errors.Is(res.serverErr, ErrWrongPassword):
			_ = rec.Conn.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01",
				Message: fmt.Sprintf("password authentication failed for user %q", user)})
		case errors.Is(res.serverErr, ErrProtocol):
			_ = rec.Conn.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: res.serverErr.Error()})
		}
	})
	res.clientErr = client(pgproto3.NewFrontend(cli, cli))
	cli.Close()
	wg.Wait()
	res.sent = rec.sent
	return res
}

// loginClient is a client function running this package's Login.
func loginClient(user, password string) func(f *pgproto3.Frontend) error {
	return func(f *pgproto3.Frontend) error { return Login(FrontendConn{F: f}, user, password) }
}

// runServer runs server (a hand-built fake PostgreSQL) on one end of a
// net.Pipe and Login on the other, returning Login's error.
func runServer(t *testing.T, user, password string, server func(b *pgproto3.Backend)) error {
	t.Helper()
	srv, cli := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer srv.Close()
		server(pgproto3.NewBackend(srv, srv))
	})
	err := Login(FrontendConn{F: pgproto3.NewFrontend(cli, cli)}, user, password)
	cli.Close()
	wg.Wait()
	return err
}

func mustCreds(t testing.TB, user, password string) *Credentials {
	t.Helper()
	c, err := NewCredentials(user, password)
	if err != nil {
		t.Fatalf("NewCredentials(%q): %v", password, err)
	}
	return c
}
