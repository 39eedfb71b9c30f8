package frontend

import (
	"strings"
)

// Startup parameters that describe the connection rather than a setting.
var nonSettings = map[string]bool{"user": true, "database": true, "options": true, "replication": true}

// Settings returns the run-time settings the client asked for at startup,
// in the order PostgreSQL applies them: "-c name=value" and "--name=value"
// switches from the options parameter first, then the other parameters
// (so an explicit parameter wins over the same name in options). Names are
// returned as given; PostgreSQL folds case itself.
func (s *Startup) Settings() ([]Param, error) {
	var out []Param
	if opts := s.Get("options"); opts != "" {
		words := splitOptions(opts)
		for i := 0; i < len(words); i++ {
			w := words[i]
			var kv string
			switch {
			case w == "-c" && i+1 < len(words):
				i++
				kv = words[i]
			case strings.HasPrefix(w, "-c"):
				kv = w[2:]
			case strings.HasPrefix(w, "--"):
				kv = w[2:]
			default:
				return nil, &ProtocolError{Code: "42704", Msg: "invalid command-line argument for server process: " + w}
			}
			name, value, ok := strings.Cut(kv, "=")
			if !ok || name == "" {
				return nil, &ProtocolError{Code: "42601", Msg: "-c " + kv + " requires a value"}
			}
			name = strings.ReplaceAll(name, "-", "_")
			if notSetting(name) {
				// PostgreSQL refuses it the same way. A server
				// connection's login is sluice's, never the client's.
				return nil, unrecognized(name)
			}
			out = append(out, Param{Name: name, Value: value})
		}
	}
	for _, p := range s.Params {
		if nonSettings[p.Name] || strings.HasPrefix(p.Name, "_pq_.") {
			continue
		}
		if notSetting(p.Name) { // "USER": PostgreSQL takes it for a setting, and has none
			return nil, unrecognized(p.Name)
		}
		out = append(out, p)
	}
	return out, nil
}

// notSetting reports whether name, in any case, is one of the login's own
// parameters, which must never reach a server connection's startup
// packet as a setting.
func notSetting(name string) bool {
	l := strings.ToLower(name)
	return nonSettings[l] || strings.HasPrefix(l, "_pq_.")
}

func unrecognized(name string) error {
	return &ProtocolError{Code: "42704", Msg: "unrecognized configuration parameter \"" + name + "\""}
}

// splitOptions splits the options parameter on unescaped spaces; a
// backslash escapes the next character, as in PostgreSQL's pg_split_opts.
func splitOptions(s string) []string {
	var words []string
	var cur strings.Builder
	escaped, have := false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped, have = false, true
		case r == '\\':
			escaped = true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if have {
				words = append(words, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		words = append(words, cur.String())
	}
	return words
}
