// Package console is the pure part of sluice's admin console (the virtual
// databases "sluice" and "pgbouncer"): parsing a command, the views'
// column lists, and encoding a result as PostgreSQL messages. It does no
// I/O and owns no goroutines; the session glue is in internal/proxy and
// the HTTP API in internal/admin, both of which read the same Snapshot.
package console

import (
	"fmt"
	"strconv"
	"strings"
)

// Verb is what a console command does.
type Verb string

// The console's commands. PgBouncer's names; SWITCHOVER is sluice's own.
const (
	Show       Verb = "SHOW"
	Set        Verb = "SET"
	Pause      Verb = "PAUSE"
	Resume     Verb = "RESUME"
	Reconnect  Verb = "RECONNECT"
	Kill       Verb = "KILL"
	KillClient Verb = "KILL_CLIENT"
	Disable    Verb = "DISABLE"
	Enable     Verb = "ENABLE"
	WaitClose  Verb = "WAIT_CLOSE"
	Reload     Verb = "RELOAD"
	Shutdown   Verb = "SHUTDOWN"
	Upgrade    Verb = "UPGRADE"
	Switchover Verb = "SWITCHOVER"
)

// Command is one parsed console statement.
type Command struct {
	Verb Verb
	// Arg is SHOW's view (upper case, "POOLS"), the database of PAUSE,
	// RESUME, ... ("" = all), or SET's parameter name.
	Arg string
	// ClientID is KILL_CLIENT's argument.
	ClientID uint64
	// Host is SWITCHOVER's "TO host" ("" = the most caught-up standby);
	// Value is SET's value.
	Host, Value string
	// WaitForClients is SHUTDOWN WAIT_FOR_CLIENTS.
	WaitForClients bool
}

// ReadOnly reports whether the command changes nothing, so stats_users
// may run it: SHOW, and SET, which only ever accepts (and ignores) the
// session parameters drivers send.
func (c Command) ReadOnly() bool { return c.Verb == Show || c.Verb == Set }

// Error is a console error: a PostgreSQL ErrorResponse (severity ERROR,
// the session goes on).
type Error struct {
	Code, Msg string
}

func (e *Error) Error() string { return e.Msg }

// SQLSTATEs the console answers with.
const (
	// CodeInvalidCommand is PgBouncer's for a command it does not know
	// (08P01, protocol_violation), kept so that scripts matching it work.
	CodeInvalidCommand = "08P01"
	// CodeInsufficientPrivilege is for a stats user running a command.
	CodeInsufficientPrivilege = "42501"
	// CodeFeatureNotSupported is for the extended query protocol.
	CodeFeatureNotSupported = "0A000"
	// CodeUndefinedObject is for an unknown database or client id.
	CodeUndefinedObject = "42704"
	// CodeObjectInUse is for a command that cannot run now (already paused, ...).
	CodeObjectInUse = "55006"
	// CodeInternal is for a command that failed.
	CodeInternal = "XX000"
)

// maxQuery bounds what Parse looks at: a console command is a few words.
const maxQuery = 4096

// Parse reads one console statement, as PgBouncer does: "CMD [arg]" with
// an optional trailing ";", words case-insensitive, an argument a word of
// [0-9A-Za-z_] or a "quoted" name ("" for a quote inside), plus "SET key
// = value", "SWITCHOVER db [TO host]" and "SHUTDOWN [WAIT_FOR_CLIENTS]".
// Several statements in one query are refused, like any other text
// PgBouncer would not parse, with PgBouncer's words. An empty query
// returns ok == false and no error (PostgreSQL answers EmptyQueryResponse).
func Parse(query string) (cmd Command, ok bool, err error) {
	invalid := func() (Command, bool, error) {
		q := query
		if len(q) > 200 {
			q = q[:200] + "..."
		}
		return Command{}, false, &Error{CodeInvalidCommand, fmt.Sprintf("invalid command '%s', use SHOW HELP;", strings.ToValidUTF8(q, "?"))}
	}
	if len(query) > maxQuery {
		return invalid()
	}
	toks, terr := tokenize(query)
	if terr != nil {
		return invalid()
	}
	if n := len(toks); n > 0 && toks[n-1].semicolon {
		toks = toks[:n-1]
	}
	if len(toks) == 0 {
		return Command{}, false, nil // "" or ";": PostgreSQL answers EmptyQueryResponse
	}
	for _, t := range toks {
		if t.semicolon {
			return invalid() // several statements
		}
	}
	if toks[0].quoted {
		return invalid()
	}
	verb := Verb(strings.ToUpper(toks[0].text))
	args := toks[1:]
	word := func(i int) (string, bool) { // an argument that is a name
		if i >= len(args) {
			return "", false
		}
		return args[i].text, true
	}
	cmd.Verb = verb
	switch verb {
	case Show:
		if len(args) != 1 || args[0].quoted {
			return invalid()
		}
		cmd.Arg = strings.ToUpper(args[0].text)
	case Set:
		// SET key = value | SET key TO value
		if len(args) != 3 || args[0].quoted || !(args[1].text == "=" || strings.EqualFold(args[1].text, "to")) || args[1].quoted {
			return invalid()
		}
		cmd.Arg, cmd.Value = strings.ToLower(args[0].text), args[2].text
	case Pause, Resume, Reconnect, Kill, WaitClose:
		if len(args) > 1 {
			return invalid()
		}
		cmd.Arg, _ = word(0)
	case Disable, Enable:
		if len(args) == 0 {
			return Command{}, false, &Error{CodeInvalidCommand, "a database is required"} // PgBouncer's words
		}
		if len(args) != 1 {
			return invalid()
		}
		cmd.Arg = args[0].text
	case KillClient:
		if len(args) != 1 {
			return invalid()
		}
		id, perr := strconv.ParseUint(args[0].text, 10, 64)
		if perr != nil {
			return invalid()
		}
		cmd.ClientID = id
	case Reload, Upgrade:
		if len(args) != 0 {
			return invalid()
		}
	case Shutdown:
		switch {
		case len(args) == 0:
		case len(args) == 1 && !args[0].quoted && strings.EqualFold(args[0].text, "WAIT_FOR_CLIENTS"):
			cmd.WaitForClients = true
		default:
			return invalid()
		}
	case Switchover:
		switch {
		case len(args) == 0:
			return Command{}, false, &Error{CodeInvalidCommand, "a database is required"}
		case len(args) == 1:
		case len(args) == 3 && !args[1].quoted && strings.EqualFold(args[1].text, "TO"):
			cmd.Host = args[2].text
		default:
			return invalid()
		}
		cmd.Arg = args[0].text
	default:
		return invalid()
	}
	if verb != Set && verb != Switchover {
		for _, a := range args {
			if !a.quoted && !isWord(a.text) && verb != KillClient {
				return invalid()
			}
		}
	}
	return cmd, true, nil
}

// token is a word, a quoted name, a punctuation mark or a semicolon.
type token struct {
	text      string
	quoted    bool
	semicolon bool
}

// tokenize splits a query into tokens: runs of non-space characters
// (cut at ";" and "="), "double-quoted" names and 'single-quoted'
// strings (SET's value; a doubled quote stands for one).
func tokenize(q string) ([]token, error) {
	var out []token
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == ';':
			out = append(out, token{text: ";", semicolon: true})
			i++
		case c == '=':
			out = append(out, token{text: "="})
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(q) {
					return nil, fmt.Errorf("unterminated quote")
				}
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c {
						b.WriteByte(c)
						j += 2
						continue
					}
					break
				}
				b.WriteByte(q[j])
				j++
			}
			if b.Len() == 0 {
				return nil, fmt.Errorf("empty name")
			}
			out = append(out, token{text: b.String(), quoted: true})
			i = j + 1
		default:
			j := i
			for j < len(q) && !strings.ContainsRune(" \t\n\r;=\"'", rune(q[j])) {
				j++
			}
			out = append(out, token{text: q[i:j]})
			i = j
		}
	}
	return out, nil
}

// isWord reports whether s is a bare name as PgBouncer's grammar reads
// one: [0-9A-Za-z_]+.
func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
