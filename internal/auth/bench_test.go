package auth

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// scramClientConn is an in-memory Conn whose "client" is an xdg-go/scram
// client conversation. The scram.Client caches its PBKDF2 output per salt, so
// after the first login neither side runs PBKDF2: the benchmark measures the
// per-login cost sluice pays (a handful of HMACs, the nonce, the messages).
type scramClientConn struct {
	conv *scram.ClientConversation
	next pgproto3.FrontendMessage
	err  error
}

func (c *scramClientConn) Send(msgs ...pgproto3.BackendMessage) error {
	for _, m := range msgs {
		switch m := m.(type) {
		case *pgproto3.AuthenticationSASL:
			first, err := c.conv.Step("")
			c.next, c.err = &pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: []byte(first)}, err
		case *pgproto3.AuthenticationSASLContinue:
			final, err := c.conv.Step(string(m.Data))
			c.next, c.err = &pgproto3.SASLResponse{Data: []byte(final)}, err
		case *pgproto3.AuthenticationSASLFinal:
			if _, err := c.conv.Step(string(m.Data)); err != nil || !c.conv.Valid() {
				c.err = errors.Join(errors.New("server signature rejected"), err)
			}
		}
	}
	return c.err
}

func (c *scramClientConn) ReceivePassword(uint32) (pgproto3.FrontendMessage, error) {
	return c.next, c.err
}

// BenchmarkAuthenticateSCRAM: one full SCRAM-SHA-256 login against
// credentials prepared from a plaintext password (PBKDF2 done once, in
// NewCredentials, outside the loop).
func BenchmarkAuthenticateSCRAM(b *testing.B) {
	creds := mustCreds(b, "app", "app_pw")
	client, err := scram.SHA256.NewClient("", "app_pw", "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c := &scramClientConn{conv: client.NewConversation()}
		if err := Authenticate(c, MethodSCRAM, "app", creds); err != nil {
			b.Fatal(err)
		}
		if !c.conv.Valid() {
			b.Fatal("client did not verify the server")
		}
	}
}

// BenchmarkNewCredentials shows the PBKDF2 cost Authenticate avoids per login.
func BenchmarkNewCredentials(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		mustCreds(b, "app", "app_pw")
	}
}
