// Package clientstate is the encoding of one client's session state as
// an old sluice process hands it to a new one during an upgrade
// (docs/design/upgrade-handoff.md): who the client is, what it SET, the
// prepared statements it knows, its cancel key and, in session mode, the
// server connection that moves with it.
//
// It is a pure core: values in, bytes out, and back (no I/O). The
// decoder treats its input as untrusted (the socket it arrives on is
// another process's): every length is checked against the bytes left,
// so that decoding never allocates more than its input's size, and
// every string is bounded. The first byte is the format's version; a
// version this build does not know is an error (ErrVersion), on which the
// caller leaves the client where it is (the old process drains it)
// rather than guessing.
package clientstate

import (
	"errors"
	"fmt"
)

// Version is the format this build writes and the only one it reads.
// Any change to the layout takes a new number: a new binary that reads
// an old one's state (or the reverse) then refuses it, and the client
// stays on the old process.
const Version = 2

// Limits of the format: what a real client can have, with room; a state
// beyond them is refused as corrupt.
const (
	MaxName      = 1 << 10  // a user, database, parameter or statement name
	MaxValue     = 1 << 16  // a parameter's value
	MaxQuery     = 16 << 20 // a prepared statement's text (wire.MaxHeldParse)
	MaxParamOIDs = 1 << 16  // a statement's parameter types (Parse's int16 count)
	MaxSecret    = 256      // a server's cancel secret (protocol 3.2 allows up to 256 bytes)
	MaxChannels  = 1 << 16  // channels one client LISTENs to
)

// Pool modes a state carries: the client's, which the new process's
// configuration must agree with.
const (
	ModeSession     byte = 's'
	ModeTransaction byte = 't'
	ModeStatement   byte = 'S'
)

// ErrVersion is returned for a state of another format version.
var ErrVersion = errors.New("client state: unknown format version")

// ErrCorrupt wraps every other decoding failure.
var ErrCorrupt = errors.New("client state: corrupt")

// Param is one name and value: a startup parameter, a setting, a
// server's ParameterStatus.
type Param struct{ Name, Value string }

// Statement is a protocol-level prepared statement the client made: its
// name ("" for the unnamed one), the text and parameter types it was
// parsed with, and the name it has on server connections (transaction
// pooling's, a hash that depends on the search_path at Parse time, so
// it is carried rather than derived again).
type Statement struct {
	Name      string
	Query     []byte
	ParamOIDs []uint32
	Server    string
	// SQL: made by SQL-level PREPARE; Query is its text after the name
	// and ParamOIDs is empty. Version 2.
	SQL bool
}

// Server is a session-mode client's server connection: what backend.Conn
// knows of it besides its socket.
type Server struct {
	Addr, Network, Address string // as configured; what was dialled (cancels go there)
	PID                    uint32
	Secret                 []byte
	Params                 []Param // its ParameterStatus values
	CreatedUnixNano        int64
	// Opened are the startup parameters it was opened with (pool
	// affinity: usually the client's own).
	Opened []Param
	// Applied are the settings sluice set on it with set_config for this
	// client (a connection opened with other startup parameters).
	Applied []Param
}

// State is one client's session.
type State struct {
	Mode           byte // ModeSession, ModeTransaction or ModeStatement
	User, Database string
	// Startup are the client's startup parameters as the server
	// connections are opened with them (user and database excluded).
	Startup []Param
	// Settings are what the client SET since (transaction pooling).
	Settings []Param
	// Statements are the client's prepared statements (transaction
	// pooling; in session mode they live on the server connection).
	Statements []Statement
	// CancelPID and CancelSecret are the key the client was given.
	CancelPID, CancelSecret uint32
	// AppName is application_name at login (the console shows it).
	AppName string
	// StartedUnixNano is when the client connected (session durations).
	StartedUnixNano int64
	// Load: the client ran LOAD (transaction pooling remembers it).
	Load bool
	// Server is the server connection that moves with a session-mode
	// client (nil otherwise).
	Server *Server
	// Listen are the channels the client LISTENs to through its pool's
	// fan-out (transaction pooling; in session mode they live on the
	// server connection). Version 2.
	Listen []string
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
