package backend

import (
	"context"
	"hash/fnv"
	"slices"
	"strings"
)

// StartupSet is a client's startup parameters as a server connection is
// opened with them: in the connection's own StartupMessage, so that
// PostgreSQL treats them exactly as for a direct client (source
// "client", RESET and DISCARD ALL return to them, parameters settable
// only at connection start work, ParameterStatus reflects them). It is
// built once per client at login and shared, read-only, by the client
// and every connection opened with it.
type StartupSet struct {
	// Settings are the parameters by lower-case name, each once (the last
	// given wins, as in PostgreSQL, where an explicit parameter is applied
	// after the -c switches of options), sorted by name.
	Settings []Setting
	// Key identifies the set for the pool's settings affinity: 0 for the
	// empty set (connections the pool opens by itself, for min_size), else
	// a 64-bit hash of Settings. Equal sets have equal keys; OpenedWith
	// confirms a match in full.
	Key uint64
}

// NewStartupSet builds the set for settings in the order PostgreSQL
// applies them (see frontend.Startup.Settings).
func NewStartupSet(settings []Setting) *StartupSet {
	byName := make(map[string]string, len(settings))
	for _, st := range settings {
		byName[strings.ToLower(st.Name)] = st.Value
	}
	set := &StartupSet{Settings: make([]Setting, 0, len(byName))}
	for name, v := range byName {
		set.Settings = append(set.Settings, Setting{Name: name, Value: v})
	}
	slices.SortFunc(set.Settings, func(a, b Setting) int { return strings.Compare(a.Name, b.Name) })
	if len(set.Settings) == 0 {
		return set
	}
	h := fnv.New64a()
	for _, st := range set.Settings {
		h.Write([]byte(st.Name))
		h.Write([]byte{0})
		h.Write([]byte(st.Value))
		h.Write([]byte{0})
	}
	set.Key = h.Sum64()
	if set.Key == 0 {
		set.Key = 1 // 0 is the empty set's
	}
	return set
}

// equal reports whether two sets hold the same settings (nil is empty).
func (s *StartupSet) equal(o *StartupSet) bool {
	if s == o {
		return true
	}
	var a, b []Setting
	if s != nil {
		a = s.Settings
	}
	if o != nil {
		b = o.Settings
	}
	return slices.Equal(a, b)
}

// SettingsKey is the key of the set the connection was opened with
// (pool.Keyed).
func (c *Conn) SettingsKey() uint64 {
	if c.opened == nil {
		return 0
	}
	return c.opened.Key
}

// OpenedWith reports whether the connection was opened with exactly set's
// parameters (a nil set is the empty one). Then nothing needs applying:
// the server applied them at startup.
func (c *Conn) OpenedWith(set *StartupSet) bool {
	if c.SettingsKey() != set.key() {
		return false
	}
	return c.opened.equal(set)
}

func (s *StartupSet) key() uint64 {
	if s == nil {
		return 0
	}
	return s.Key
}

type startupCtxKey struct{}

// WithStartup returns a context that makes a pool's dial open
// connections with set (see StartupFrom). A session makes it once, at
// login, so no transaction allocates for it.
func WithStartup(ctx context.Context, set *StartupSet) context.Context {
	return context.WithValue(ctx, startupCtxKey{}, set)
}

// StartupFrom returns the set WithStartup put in ctx, or nil. The pool's
// dial function reads it: pool.Pool dials on behalf of whichever caller
// holds the slot, with that caller's context.
func StartupFrom(ctx context.Context) *StartupSet {
	set, _ := ctx.Value(startupCtxKey{}).(*StartupSet)
	return set
}
