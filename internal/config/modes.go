package config

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/sluice-proxy/sluice/internal/access"
)

// The modes below are small typed enums rather than strings so that a
// misspelt comparison ("verify_full") cannot compile and silently never
// match. Each type's YAML spelling is its entry in one names table (index =
// value); String, MarshalText, UnmarshalText, the decoder and the problem
// messages all read that table, so the spelling lives in one place. Zero
// values are the ones a hand-built Config has always meant: session pool,
// TLS disabled, no auth override, no access TLS requirement, TLS 1.2.

// unknownMode is the value the decoder gives a mode whose spelling it does
// not know. The spelling itself is kept by the collector, and validation
// reports it as written, so a *Config returned by Parse never holds it.
// Like an unknown string before, it equals none of the constants.
const unknownMode = 0xff

// PoolMode is databases.<name>.pool_mode.
type PoolMode uint8

// Pool modes.
const (
	PoolSession     PoolMode = iota // a server connection per client session (default)
	PoolTransaction                 // a server connection per transaction
	PoolStatement                   // a server connection per statement; transactions are refused
)

// AuthMethod is auth.method, users[].auth_method and access[].method,
// spelled as in pg_hba.conf. AuthUnset ("") means no override in
// users[] and access[]; AuthReject is only valid in access[].
type AuthMethod uint8

// Auth methods, in the order of AccessMethods.
const (
	AuthUnset AuthMethod = iota
	AuthSCRAM
	AuthMD5
	AuthPassword
	AuthTrust
	AuthToken
	AuthCert
	AuthReject
)

// TLSMode is tls.mode, TLS between clients and sluice.
type TLSMode uint8

// Client TLS modes.
const (
	TLSDisable TLSMode = iota // SSLRequest is answered N (default)
	TLSAllow                  // TLS when the client asks for it
	TLSRequire                // TCP clients must use TLS
)

// TLSVersion is tls.min_version.
type TLSVersion uint8

// Minimum TLS versions.
const (
	TLS12 TLSVersion = iota // default
	TLS13
)

// ServerTLSMode is databases.<name>.server_tls.mode, libpq's sslmode.
// The zero value is disable (as TLSOptions has always read ""); the
// loader's default is DefaultServerTLSMode (prefer).
type ServerTLSMode uint8

// Server TLS modes.
const (
	ServerTLSDisable ServerTLSMode = iota
	ServerTLSPrefer
	ServerTLSRequire
	ServerTLSVerifyCA
	ServerTLSVerifyFull
)

// AccessTLSMode is access[].tls (pg_hba's hostssl and hostnossl).
type AccessTLSMode uint8

// Access rule TLS requirements.
const (
	AccessTLSAny       AccessTLSMode = iota // "": any client the cidr covers
	AccessTLSRequired                       // TCP clients that use TLS
	AccessTLSForbidden                      // TCP clients that do not
)

// PinPolicy is databases.<name>.pool.pin_policy: what transaction and
// statement mode do with a statement that would pin its client to a
// server connection.
type PinPolicy uint8

// Pin policies.
const (
	PinPolicyPin   PinPolicy = iota // the client keeps its connection while the state lasts (default)
	PinPolicyError                  // the statement is refused with 0A000 and nothing is held
)

// Names tables, index = value. The access package's spellings are used
// where it has its own (reject, required, forbidden), so compileAccess
// maps to it with String.
var (
	poolModeNames      = []string{"session", "transaction", "statement"}
	authMethodNames    = []string{"", "scram-sha-256", "md5", "password", "trust", "token", "cert", access.MethodReject}
	tlsModeNames       = []string{"disable", "allow", "require"}
	tlsVersionNames    = []string{"1.2", "1.3"}
	serverTLSModeNames = []string{"disable", "prefer", "require", "verify-ca", "verify-full"}
	accessTLSNames     = []string{"", access.TLSRequired, access.TLSForbidden}
	pinPolicyNames     = []string{"pin", "error"}
)

func (m PoolMode) String() string      { return modeName(poolModeNames, m) }
func (m AuthMethod) String() string    { return modeName(authMethodNames, m) }
func (m TLSMode) String() string       { return modeName(tlsModeNames, m) }
func (v TLSVersion) String() string    { return modeName(tlsVersionNames, v) }
func (m ServerTLSMode) String() string { return modeName(serverTLSModeNames, m) }
func (m AccessTLSMode) String() string { return modeName(accessTLSNames, m) }
func (p PinPolicy) String() string     { return modeName(pinPolicyNames, p) }

// MarshalText writes the YAML spelling, so that logs (slog's text and
// JSON handlers), JSON and YAML show "transaction", not 1.
func (m PoolMode) MarshalText() ([]byte, error)      { return modeText(poolModeNames, m) }
func (m AuthMethod) MarshalText() ([]byte, error)    { return modeText(authMethodNames, m) }
func (m TLSMode) MarshalText() ([]byte, error)       { return modeText(tlsModeNames, m) }
func (v TLSVersion) MarshalText() ([]byte, error)    { return modeText(tlsVersionNames, v) }
func (m ServerTLSMode) MarshalText() ([]byte, error) { return modeText(serverTLSModeNames, m) }
func (m AccessTLSMode) MarshalText() ([]byte, error) { return modeText(accessTLSNames, m) }
func (p PinPolicy) MarshalText() ([]byte, error)     { return modeText(pinPolicyNames, p) }

// UnmarshalText reads the YAML spelling, so that plain yaml.Unmarshal (and
// JSON) decode the modes too; Parse uses setSpelling instead, to report
// an unknown spelling the way it reports every other invalid value.
func (m *PoolMode) UnmarshalText(b []byte) error {
	return unmarshalMode(poolModeNames, m, b, "pool mode")
}
func (m *AuthMethod) UnmarshalText(b []byte) error {
	return unmarshalMode(authMethodNames, m, b, "auth method")
}
func (m *TLSMode) UnmarshalText(b []byte) error { return unmarshalMode(tlsModeNames, m, b, "TLS mode") }
func (v *TLSVersion) UnmarshalText(b []byte) error {
	return unmarshalMode(tlsVersionNames, v, b, "TLS version")
}
func (m *ServerTLSMode) UnmarshalText(b []byte) error {
	return unmarshalMode(serverTLSModeNames, m, b, "server TLS mode")
}
func (m *AccessTLSMode) UnmarshalText(b []byte) error {
	return unmarshalMode(accessTLSNames, m, b, "access TLS requirement")
}
func (p *PinPolicy) UnmarshalText(b []byte) error {
	return unmarshalMode(pinPolicyNames, p, b, "pin policy")
}

// spelledMode is a mode field the decoder sets from its YAML spelling:
// setSpelling stores the value spelt s, or unknownMode and false.
type spelledMode interface{ setSpelling(s string) bool }

func (m *PoolMode) setSpelling(s string) bool      { return setMode(poolModeNames, m, s) }
func (m *AuthMethod) setSpelling(s string) bool    { return setMode(authMethodNames, m, s) }
func (m *TLSMode) setSpelling(s string) bool       { return setMode(tlsModeNames, m, s) }
func (v *TLSVersion) setSpelling(s string) bool    { return setMode(tlsVersionNames, v, s) }
func (m *ServerTLSMode) setSpelling(s string) bool { return setMode(serverTLSModeNames, m, s) }
func (m *AccessTLSMode) setSpelling(s string) bool { return setMode(accessTLSNames, m, s) }
func (p *PinPolicy) setSpelling(s string) bool     { return setMode(pinPolicyNames, p, s) }

func modeName[T ~uint8](names []string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return "unknown(" + strconv.Itoa(int(v)) + ")"
}

func modeText[T ~uint8](names []string, v T) ([]byte, error) {
	if int(v) >= len(names) {
		return nil, fmt.Errorf("config: no spelling for mode value %d", v)
	}
	return []byte(names[v]), nil
}

func setMode[T ~uint8](names []string, v *T, s string) bool {
	i := slices.Index(names, s)
	if i < 0 {
		*v = unknownMode
		return false
	}
	*v = T(i)
	return true
}

func unmarshalMode[T ~uint8](names []string, v *T, b []byte, what string) error {
	var m T
	if !setMode(names, &m, string(b)) {
		return fmt.Errorf("unknown %s %q (want %s)", what, b, oneOf(names))
	}
	*v = m
	return nil
}
