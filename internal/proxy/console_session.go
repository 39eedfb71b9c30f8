package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// reasonConsoleDenied: a user outside admin.users and admin.stats_users
// asked for the console's database.
const reasonConsoleDenied = "console_denied"

// maxConsoleMessage bounds one message a console client may send: a
// command is a few words, so anything larger is refused and the
// connection closed, never buffered.
const maxConsoleMessage = 64 << 10

// consoleServerVersion is the server_version a console client is told:
// PgBouncer's form ("1.18.0/bouncer"), as the console answers with its
// 1.18 columns.
const consoleServerVersion = "1.18.0/sluice"

// serveConsole logs a client in to the admin console (database "sluice"
// or "pgbouncer") and answers its commands until it leaves. The user
// authenticates exactly as for any database (its method, access rules
// and TLS rules were applied by admit); then it must be in admin.users
// or admin.stats_users, else it gets 42501 as PostgreSQL answers a role
// without CONNECT privilege. Runs on the session goroutine, which owns
// the client socket throughout.
func (ss *session) serveConsole(st *state, user, dbName string, adm admission, start *frontend.Startup) {
	s := ss.srv
	cfg := st.cfg
	u, err := ss.authenticate(st, cfg.User(user), user, adm)
	if err != nil {
		return
	}
	role := cfg.Admin.ConsoleRole(u.Name)
	if role == "" {
		ss.failAs(reasonConsoleDenied, console.CodeInsufficientPrivilege,
			fmt.Sprintf("permission denied for database %q: user %q is not in admin.users or admin.stats_users", dbName, u.Name), "user", u.Name)
		return
	}
	if !s.slots.loggedIn(ss) {
		ss.failTooMany(cfg)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ss.mu.Lock()
	ss.stop = cancel // terminate ends a command that waits (PAUSE, WAIT_CLOSE, SWITCHOVER)
	terminated := ss.terminated
	ss.mu.Unlock()
	if terminated {
		return
	}
	ss.noteLogin(u.Name, dbName, start.Get("application_name"), 0, true)
	s.log.Info("admin console login", "user", u.Name, "database", dbName, "remote", ss.remote(), "role", role)
	ss.client.SetDeadline(time.Time{})
	if err := wire.Write(ss.client, consoleGreeting(s.nextPID(), start.Get("application_name"))...); err != nil {
		return
	}
	ss.consoleLoop(ctx, u.Name, role, cfg.Limits.ClientIdleTimeout.D())
}

// consoleGreeting is the login's answer: the parameters drivers look at,
// a process ID and secret (cancelling a console command does nothing:
// the key is not registered), ReadyForQuery.
func consoleGreeting(pid uint32, appName string) []pgproto3.Message {
	var secret [4]byte
	rand.Read(secret[:])
	msgs := []pgproto3.Message{&pgproto3.AuthenticationOk{}}
	for _, p := range [][2]string{{"application_name", appName}, {"client_encoding", "UTF8"}, {"DateStyle", "ISO"},
		{"integer_datetimes", "on"}, {"server_encoding", "UTF8"}, {"server_version", consoleServerVersion},
		{"standard_conforming_strings", "on"}, {"TimeZone", "GMT"}} {
		msgs = append(msgs, &pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	return append(msgs, &pgproto3.BackendKeyData{ProcessID: pid, SecretKey: secret[:]}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

// consoleLoop reads the client's messages: Query is answered, Terminate
// ends the session, the extended protocol gets 0A000 (once per batch,
// then ReadyForQuery at its Sync, so the client's state stays in step),
// anything else is a protocol violation that closes the connection. A
// client silent for idle (limits.client_idle_timeout, 0 = never) is
// closed with 57P01, as other clients are.
func (ss *session) consoleLoop(ctx context.Context, user, role string, idle time.Duration) {
	var hdr [5]byte
	var out []byte
	extendedFailed := false
	for {
		if idle > 0 && !ss.draining.Load() {
			ss.client.SetReadDeadline(time.Now().Add(idle))
			if ss.draining.Load() { // drain set its deadline between the check and ours
				ss.client.SetReadDeadline(time.Unix(1, 0))
			}
		}
		if _, err := io.ReadFull(ss.client, hdr[:]); err != nil {
			var ne net.Error
			if idle > 0 && !ss.draining.Load() && errors.As(err, &ne) && ne.Timeout() {
				ss.client.SetWriteDeadline(time.Now().Add(time.Second))
				wire.Write(ss.client, wire.Error(wire.CodeAdminShutdown, "terminating the admin console connection: idle for longer than limits.client_idle_timeout (%s)", idle))
				return
			}
			ss.consoleEnded(err)
			return
		}
		typ, n := hdr[0], binary.BigEndian.Uint32(hdr[1:])
		if n < 4 || n-4 > maxConsoleMessage {
			ss.fail(wire.CodeProgramLimitExceeded, fmt.Sprintf("console message too large (%d bytes; the limit is %d)", int64(n)-4, maxConsoleMessage))
			return
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(ss.client, body); err != nil {
			ss.consoleEnded(err)
			return
		}
		out = out[:0]
		switch typ {
		case 'Q':
			q := body
			if i := indexZero(q); i >= 0 {
				q = q[:i]
			}
			out = ss.consoleQuery(ctx, out, user, role, string(q))
			out, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(out)
		case 'X':
			return
		case 'S':
			extendedFailed = false
			out, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(out)
		case 'P', 'B', 'D', 'E', 'C', 'H', 'F':
			if extendedFailed {
				continue
			}
			extendedFailed = true
			out = console.AppendError(out, &console.Error{Code: console.CodeFeatureNotSupported,
				Msg: "the admin console supports only the simple query protocol (as PgBouncer's): use psql, or your driver's simple protocol mode"})
		default:
			ss.fail(wire.CodeProtocolViolation, fmt.Sprintf("unexpected message type %q on the admin console", typ))
			return
		}
		if len(out) > 0 {
			ss.client.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := ss.client.Write(out); err != nil {
				return
			}
		}
		if ss.draining.Load() {
			ss.consoleEnded(nil)
			return
		}
	}
}

func indexZero(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// consoleEnded tells a console client why its session ends when sluice
// ends it (shutdown); a client that left hears nothing.
func (ss *session) consoleEnded(err error) {
	if ss.draining.Load() {
		ss.client.SetWriteDeadline(time.Now().Add(time.Second))
		wire.Write(ss.client, wire.Error(wire.CodeAdminShutdown, "sluice is shutting down"))
		return
	}
	if err != nil && !errors.Is(err, io.EOF) {
		ss.srv.log.Debug("admin console client left", "remote", ss.remote(), "error", err)
	}
}

// consoleQuery answers one simple Query: the result's messages, or an
// ErrorResponse, appended to out.
func (ss *session) consoleQuery(ctx context.Context, out []byte, user, role, q string) []byte {
	s := ss.srv
	cmd, ok, err := console.Parse(q)
	var ce *console.Error
	switch {
	case err != nil:
		errors.As(err, &ce)
		return console.AppendError(out, ce)
	case !ok:
		out, _ = (&pgproto3.EmptyQueryResponse{}).Encode(out)
		return out
	case role != "admin" && !cmd.ReadOnly():
		return console.AppendError(out, &console.Error{Code: console.CodeInsufficientPrivilege,
			Msg: fmt.Sprintf("admin access needed: user %q is in admin.stats_users and may run SHOW commands only", user)})
	}
	if !cmd.ReadOnly() {
		s.log.Info("admin console command", "user", user, "remote", ss.remote(), "command", string(cmd.Verb), "argument", cmd.Arg)
	}
	res, err := s.Exec(ctx, cmd)
	if err != nil {
		if !errors.As(err, &ce) {
			ce = &console.Error{Code: console.CodeInternal, Msg: err.Error()}
		}
		level := slog.LevelInfo
		if cmd.ReadOnly() {
			level = slog.LevelDebug
		}
		s.log.Log(ctx, level, "admin console command failed", "user", user, "command", string(cmd.Verb), "error", ce.Msg)
		return console.AppendError(out, ce)
	}
	return res.Append(out)
}
