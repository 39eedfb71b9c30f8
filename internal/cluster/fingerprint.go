package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"strings"

	"github.com/sluice-proxy/sluice/internal/config"
)

// Fingerprint digests what must be the same on every instance of a
// fleet, in three parts so that a mismatch can say which: the databases
// (names, server database names, hosts, pool modes, max_db_connections), the users (names
// and auth methods) and the auth settings (method, auth_user,
// auth_query, allow_plaintext_password). Passwords are not part of it:
// even a hash of them in etcd could be guessed at offline by anyone who
// can read the prefix, and a differing password shows up as failed
// logins on one instance anyway. Each part is the first 16 bytes of a
// SHA-256, in hex.
type Fingerprint struct {
	Databases string `json:"databases"`
	Users     string `json:"users"`
	Auth      string `json:"auth"`
}

// FingerprintOf computes cfg's fingerprint. It is deterministic: the
// same settings in any order give the same digests.
func FingerprintOf(cfg *config.Config) Fingerprint {
	type db struct {
		Name, DBName, PoolMode string
		Hosts                  []string
		// The fleet's budget must be one number everywhere (omitted
		// when unset, so fingerprints from before it still match).
		MaxDBConnections int `json:",omitempty"`
	}
	dbs := make([]db, 0, len(cfg.Databases))
	for name, d := range cfg.Databases {
		dbs = append(dbs, db{Name: name, DBName: d.DBName, PoolMode: d.PoolMode.String(), Hosts: d.Hosts, MaxDBConnections: d.Pool.MaxDBConnections})
	}
	sort.Slice(dbs, func(i, j int) bool { return dbs[i].Name < dbs[j].Name })

	type user struct{ Name, Method string }
	users := make([]user, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		users = append(users, user{Name: u.Name, Method: u.EffectiveAuthMethod(cfg.Auth.Method).String()})
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Name < users[j].Name })

	auth := []string{cfg.Auth.Method.String(), cfg.Auth.AuthUser, cfg.Auth.AuthQuery,
		map[bool]string{true: "plaintext", false: ""}[cfg.Auth.AllowPlaintextPassword]}
	return Fingerprint{Databases: digest(dbs), Users: digest(users), Auth: digest(auth)}
}

func digest(v any) string {
	b, _ := json.Marshal(v) // plain structs and slices always marshal
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Differs names the parts in which f and g differ ("databases",
// "users", "auth"), none when they match.
func (f Fingerprint) Differs(g Fingerprint) []string {
	var out []string
	if f.Databases != g.Databases {
		out = append(out, "databases")
	}
	if f.Users != g.Users {
		out = append(out, "users")
	}
	if f.Auth != g.Auth {
		out = append(out, "auth")
	}
	return out
}

// DatabaseNames lists cfg's databases, sorted, for the member record.
func DatabaseNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Databases))
	for n := range cfg.Databases {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// mismatchSummary describes which peers' fingerprints differ from own,
// as "proxy-2 (databases), proxy-3 (users, auth)", sorted by instance;
// "" when all match. The member logs it when it changes.
func mismatchSummary(own Fingerprint, peers []Record, self string) string {
	var parts []string
	for _, p := range peers {
		if p.InstanceID == self {
			continue
		}
		if d := own.Differs(p.Fingerprint); len(d) > 0 {
			parts = append(parts, p.InstanceID+" ("+strings.Join(d, ", ")+")")
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
