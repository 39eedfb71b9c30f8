package auth

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// nonceRe extracts the (combined) nonce from a server-first-message.
var nonceRe = regexp.MustCompile(`r=([^,]*)`)

// scriptedClient is an in-memory Conn replaying fixed SCRAM client messages.
// "NONCE" in final is replaced by the nonce of the server-first-message, so
// the fuzzer gets past the nonce check into proof parsing.
type scriptedClient struct {
	first, final []byte
	serverFirst  string
}

func (c *scriptedClient) Send(msgs ...pgproto3.BackendMessage) error {
	for _, m := range msgs {
		if cont, ok := m.(*pgproto3.AuthenticationSASLContinue); ok {
			c.serverFirst = string(cont.Data)
		}
	}
	return nil
}

func (c *scriptedClient) ReceivePassword(authType uint32) (pgproto3.FrontendMessage, error) {
	if authType == pgproto3.AuthTypeSASL {
		return &pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: c.first}, nil
	}
	nonce := ""
	if m := nonceRe.FindStringSubmatch(c.serverFirst); m != nil {
		nonce = m[1]
	}
	return &pgproto3.SASLResponse{Data: []byte(strings.ReplaceAll(string(c.final), "NONCE", nonce))}, nil
}

// FuzzAuthenticateSCRAM feeds arbitrary client-first/client-final messages to
// the SCRAM server: it must never panic, and never accept.
func FuzzAuthenticateSCRAM(f *testing.F) {
	creds := mustCreds(f, "app", appPwVerifier)
	f.Fuzz(func(t *testing.T, first, final []byte) {
		err := Authenticate(&scriptedClient{first: first, final: final}, MethodSCRAM, "app", creds)
		if err == nil {
			t.Fatalf("accepted first=%q final=%q", first, final)
		}
		if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}

// FuzzNewCredentials: the password/verifier parser never panics, and any
// SCRAM verifier it accepts round-trips.
func FuzzNewCredentials(f *testing.F) {
	f.Fuzz(func(t *testing.T, password string) {
		if !strings.HasPrefix(password, scramPrefix) && !strings.HasPrefix(password, "md5") {
			return // plaintext: only PBKDF2, nothing to parse
		}
		c, err := NewCredentials("u", password)
		if err != nil {
			return
		}
		if v := c.SCRAMVerifier(); v != "" && !c.HasPlaintext() {
			back, err := NewCredentials("u", v)
			if err != nil || back.SCRAMVerifier() != v {
				t.Fatalf("verifier %q does not round-trip: %v", v, err)
			}
		}
	})
}

// scriptedServer is an in-memory ServerConn playing a SCRAM server that
// does not know the password. "NONCE" in serverFirst is replaced by the
// client's nonce.
type scriptedServer struct {
	serverFirst, serverFinal []byte
	clientFirst              string
	step                     int
}

func (s *scriptedServer) Send(msgs ...pgproto3.FrontendMessage) error {
	for _, m := range msgs {
		if init, ok := m.(*pgproto3.SASLInitialResponse); ok {
			s.clientFirst = string(init.Data)
		}
	}
	return nil
}

func (s *scriptedServer) Receive() (pgproto3.BackendMessage, error) {
	s.step++
	switch s.step {
	case 1:
		return &pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}, nil
	case 2:
		nonce := ""
		if m := nonceRe.FindStringSubmatch(s.clientFirst); m != nil {
			nonce = m[1]
		}
		return &pgproto3.AuthenticationSASLContinue{Data: []byte(strings.ReplaceAll(string(s.serverFirst), "NONCE", nonce))}, nil
	case 3:
		return &pgproto3.AuthenticationSASLFinal{Data: s.serverFinal}, nil
	}
	return &pgproto3.AuthenticationOk{}, nil
}

// FuzzLoginSCRAM feeds arbitrary server-first/server-final messages to
// Login's SCRAM client: it must never panic and never succeed against a
// server that does not know the password.
func FuzzLoginSCRAM(f *testing.F) {
	iterRe := regexp.MustCompile(`i=\+?0*(\d+)`)
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal []byte) {
		for _, m := range iterRe.FindAllSubmatch(serverFirst, -1) {
			if n, err := strconv.Atoi(string(m[1])); err != nil || n > 10000 {
				t.Skip("too much PBKDF2 for fuzzing")
			}
		}
		if err := Login(&scriptedServer{serverFirst: serverFirst, serverFinal: serverFinal}, "app", "app_pw"); err == nil {
			t.Fatalf("login succeeded against a forged server: first=%q final=%q", serverFirst, serverFinal)
		}
	})
}
