package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/access"
	"github.com/sluice-proxy/sluice/internal/auth"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/token"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// authMethod maps a password method to package auth's, which checks it:
// the one place where config's methods become auth's. Token and cert
// logins are checked here in the proxy and never reach auth; an unmapped
// method keeps its spelling, which auth refuses.
func authMethod(m config.AuthMethod) auth.Method {
	switch m {
	case config.AuthSCRAM:
		return auth.MethodSCRAM
	case config.AuthMD5:
		return auth.MethodMD5
	case config.AuthPassword:
		return auth.MethodPassword
	case config.AuthTrust:
		return auth.MethodTrust
	}
	return auth.Method(m.String())
}

// certError is a failed certificate login: the client gets 28000 with
// msg, as PostgreSQL answers for cert authentication.
type certError struct{ msg string }

func (e *certError) Error() string { return e.msg }

// unknownRoleError is a login that passed its method's check as a user
// sluice does not know: trust, or a certificate whose CN is the user
// name. PostgreSQL reveals a missing role in exactly these cases (its
// check comes after authentication), so the client gets its words, 28000
// `role "x" does not exist`; where a password is checked, an unknown user
// reads like a wrong password instead.
type unknownRoleError struct{ name string }

func (e *unknownRoleError) Error() string { return fmt.Sprintf("role %q does not exist", e.name) }

// admission is what admit decided: the database the client was let in
// for (tokens are checked against it) and the matching access rule's
// method override (AuthUnset = the user's own).
type admission struct {
	database string
	method   config.AuthMethod
}

// admit decides, before any password is exchanged, whether the client may
// try to log in: its address must not have used up its failed logins, and
// an access rule must allow it. It returns the database and the matching
// rule's method override. On refusal the client has been sent a 28000
// error and the session must end.
func (ss *session) admit(cfg *config.Config, user, db string) (admission, bool) {
	addr := ss.client.RemoteAddr()
	if !ss.srv.limiter.Allow(addr, limitedUser(cfg, user)) {
		ss.failAs(reasonRateLimited, wire.CodeInvalidAuthSpec, fmt.Sprintf("too many failed logins from %s; try again later", access.Describe(addr)),
			"user", user, "database", db)
		return admission{}, false
	}
	_, secured := ss.client.(*tls.Conn)
	client := access.Client{Addr: addr, TLS: secured, User: user, Database: db}
	d := cfg.AccessRules().Check(client)
	if d.Allowed {
		return admission{database: db, method: cfg.AccessMethod(d)}, true
	}
	if d.Rule < 0 {
		ss.failAs(reasonAccessDenied, wire.CodeInvalidAuthSpec, access.Refusal(client, false), "rule", "none")
	} else {
		ss.failAs(reasonAccessDenied, wire.CodeInvalidAuthSpec, access.Refusal(client, true), "rule", fmt.Sprintf("access[%d]", d.Rule))
	}
	return admission{}, false
}

// authenticate checks the client's password with the configured method,
// or with the access rule's override when it sets one. An unknown user runs the
// same exchange against mock credentials, so a client cannot tell unknown
// users from wrong passwords. A wrong password counts against the
// client's address (limits.auth_failure_burst). On failure the client has
// been sent the error and the session must end. With auth.auth_user set,
// a user without a password in the config is checked against the one
// auth_query returns (see authenticateLookedUp). It returns the user the
// session runs as: u, or a bare entry for a user found by auth_query.
func (ss *session) authenticate(st *state, u *config.User, name string, adm admission) (*config.User, error) {
	method := st.cfg.Auth.Method
	var creds *auth.Credentials
	if u != nil {
		method = u.EffectiveAuthMethod(method)
		creds = st.creds[u.Name]
	}
	if adm.method != config.AuthUnset {
		method = adm.method
	}
	if method == config.AuthPassword && ss.plaintextRefused(st.cfg) {
		ss.failAs("plaintext_password", wire.CodeInvalidAuthSpec, errPlaintextPassword.Error(), "user", name)
		return nil, errPlaintextPassword
	}
	var err error
	var ce *certError
	var le *lookupError
	switch {
	case method == config.AuthToken:
		err = ss.checkToken(st, u, name, adm.database)
	case method == config.AuthCert:
		err = ss.checkCert(u, name)
	case usesAuthQuery(st.cfg, u, method) && st.cfg.Databases[adm.database] != nil:
		u, err = ss.authenticateLookedUp(st, u, name, method, st.cfg.Databases[adm.database])
	default:
		err = auth.Authenticate(clientAuthConn(ss), authMethod(method), name, creds)
	}
	if err == nil && u == nil {
		err = &unknownRoleError{name} // trust for a user sluice does not know
	}
	var ue *unknownRoleError
	switch {
	case err == nil:
		return u, nil
	case errors.As(err, &ue):
		ss.countFailure(st, name)
		ss.failAs("unknown_user", wire.CodeInvalidAuthSpec, `role "`+name+`" does not exist`, "method", method)
	case errors.As(err, &le):
		ss.srv.log.Error("auth_query look-up failed", "remote", ss.remote(), "user", name, "database", adm.database, "error", le.err)
		ss.failAs("auth_query", wire.CodeConnectionFailure, fmt.Sprintf("could not look up the password for user %q (auth_query failed; see sluice's log)", name))
	case errors.As(err, &ce):
		ss.countFailure(st, name)
		ss.failAs("bad_certificate", wire.CodeInvalidAuthSpec, ce.msg, "method", method)
	case errors.Is(err, auth.ErrWrongPassword):
		ss.countFailure(st, name)
		// PostgreSQL's words, quoted as it quotes (no escaping).
		msg := `password authentication failed for user "` + name + `"`
		if errors.Is(err, auth.ErrEmptyPassword) {
			msg = auth.EmptyPasswordMessage
		}
		ss.failAs(reasonWrongPassword, wire.CodeInvalidPassword, msg, "method", method)
	case errors.Is(err, auth.ErrProtocol):
		ss.failAs("protocol", wire.CodeProtocolViolation, err.Error(), "user", name)
	case ss.wasEvicted():
		// lost its slot to a newer socket: the accept loop logged it
	default:
		// A client that hangs up before answering is not worth a log line
		// (psql does it each time it has to ask for a password, as
		// PostgreSQL knows: it logs nothing then either); other errors are.
		level, reason := slog.LevelInfo, reasonDisconnect
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF):
			level = slog.LevelDebug
		case errors.As(err, &ne) && ne.Timeout():
			reason = reasonLoginTimeout
		}
		ss.srv.countRefusal(ss.client.RemoteAddr(), reason, level, "client left during authentication", "remote", ss.remote(), "user", name, "error", err)
	}
	return nil, err
}

// errPlaintextPassword is what a client hears when it would have to send
// its password in clear over the network (method password without TLS).
var errPlaintextPassword = errors.New("password authentication over an unencrypted connection is not allowed; connect with TLS (sslmode=require) or set auth.allow_plaintext_password")

// plaintextRefused reports whether a password sent in clear would cross
// the network: the client is on TCP without TLS and
// auth.allow_plaintext_password is off. It is asked before the password
// is requested, so the client never sends it. Unix-socket clients are
// exempt (libpq never uses TLS there, and the socket stays on the host).
// Tokens are not refused: they expire within minutes, and existing
// deployments send them over plain TCP (docs/security.md recommends TLS).
func (ss *session) plaintextRefused(cfg *config.Config) bool {
	if cfg.Auth.AllowPlaintextPassword || ss.remote() == "unix" {
		return false
	}
	_, secured := ss.client.(*tls.Conn)
	return !secured
}

// clientAuthConn is the client connection as an auth.Conn.
func clientAuthConn(ss *session) auth.Conn { return frontend.AuthConn{Conn: ss.client} }

// countFailure charges a failed login to the client's address and user
// (see access.Limiter). It is counted before the client hears of it, so
// that its next attempt already sees the failure.
func (ss *session) countFailure(st *state, name string) {
	if ss.srv.limiter.Fail(ss.client.RemoteAddr(), limitedUser(st.cfg, name)) {
		// Under a steady flood this comes back with every token
		// refilled (once a second by default): summarised too.
		ss.srv.logRefusal(ss.client.RemoteAddr(), "auth_failures_exhausted", slog.LevelWarn,
			"too many failed logins: refusing this address for this user until it gets tokens back",
			"remote", access.Describe(ss.client.RemoteAddr()), "user", name,
			"auth_failure_burst", st.cfg.Limits.AuthFailureBurst, "auth_failures_per_minute", st.cfg.Limits.AuthFailuresPerMinute)
	}
}

// checkCert accepts the client if it came over TLS with a certificate
// that verified against tls.client_ca_file (the handshake refuses one
// that does not) and whose subject CN is the user name, as PostgreSQL's
// cert method does. Nothing is exchanged with the client.
func (ss *session) checkCert(u *config.User, name string) error {
	tc, ok := ss.client.(*tls.Conn)
	if !ok {
		ss.srv.log.Info("certificate login without TLS", "remote", ss.remote(), "user", name)
		return &certError{"connection requires a valid client certificate"}
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		ss.srv.log.Info("certificate login without a verified client certificate", "remote", ss.remote(), "user", name)
		return &certError{"connection requires a valid client certificate"}
	}
	cn := cs.PeerCertificates[0].Subject.CommonName
	if cn != name {
		ss.srv.log.Info("certificate login rejected", "remote", ss.remote(), "user", name, "cn", cn, "reason", "the certificate's common name is not the user name")
		return &certError{`certificate authentication failed for user "` + name + `"`}
	}
	if u == nil { // a valid certificate for a name sluice does not know
		return &unknownRoleError{name}
	}
	return nil
}

// checkToken asks for a cleartext password, as auth method password does,
// and verifies it as a token for name and database. A bad token is
// reported as auth.ErrWrongPassword, so the client sees exactly what a
// wrong password gets; the reason goes to the log, the token never does.
func (ss *session) checkToken(st *state, u *config.User, name, database string) error {
	conn := frontend.AuthConn{Conn: ss.client}
	if err := conn.Send(&pgproto3.AuthenticationCleartextPassword{}); err != nil {
		return fmt.Errorf("sending password request: %w", err)
	}
	msg, err := conn.ReceivePassword(pgproto3.AuthTypeCleartextPassword)
	if err != nil {
		return fmt.Errorf("receiving password message: %w", err)
	}
	var pm *pgproto3.PasswordMessage
	switch m := msg.(type) {
	case *pgproto3.PasswordMessage:
		pm = m
	case *pgproto3.Terminate:
		return fmt.Errorf("client terminated during authentication: %w", io.EOF)
	default:
		return fmt.Errorf("%w: expected %T, got %T", auth.ErrProtocol, pm, msg)
	}
	var reason error
	switch {
	case pm.Password == "": // as method password answers it
		ss.srv.logRefusal(ss.client.RemoteAddr(), "token_rejected: empty", slog.LevelInfo, "login token rejected", "remote", ss.remote(), "user", name, "database", database, "reason", "empty")
		return auth.ErrEmptyPassword
	case u == nil:
		reason = errors.New("unknown user")
	case st.tokenKey == nil: // prevented by config validation
		reason = errors.New("token.public_key_file is not set")
	default:
		reason = token.Verify(st.tokenKey, pm.Password, name, database, time.Now())
	}
	if reason != nil { // a fixed set of reasons: each is summarised on its own
		ss.srv.logRefusal(ss.client.RemoteAddr(), "token_rejected: "+reason.Error(), slog.LevelInfo, "login token rejected", "remote", ss.remote(), "user", name, "database", database, "reason", reason.Error())
		return auth.ErrWrongPassword
	}
	return nil
}

// limitedUser is the user a login is limited as: the name when the
// configuration has it, else access.UnknownUser, which all names sluice
// does not know share (auth_query users included: sluice only learns
// whether they exist by asking PostgreSQL).
func limitedUser(cfg *config.Config, name string) string {
	if cfg.User(name) == nil {
		return access.UnknownUser
	}
	return name
}
