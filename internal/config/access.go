package config

import (
	"slices"

	"github.com/sluice-proxy/sluice/internal/access"
)

// AccessRule is one entry of the top-level access list, sluice's
// pg_hba.conf: the first rule that matches a client's address, user and
// database decides whether it may log in and with which method. With
// rules present, a client no rule matches is refused (SQLSTATE 28000).
type AccessRule struct {
	// CIDR is where the rule applies: "10.0.0.0/8", a single address,
	// "all" (every client, Unix sockets included) or "local" (Unix-socket
	// clients only). Required.
	CIDR      string   `yaml:"cidr"`
	Users     []string `yaml:"users"`     // optional; empty = any user
	Databases []string `yaml:"databases"` // optional; empty = any database
	// Method overrides the user's auth method: scram-sha-256, md5,
	// password, trust, token, or reject (refuse). Empty = the user's own
	// method.
	Method AuthMethod `yaml:"method"`
	// TLS restricts the rule to TCP clients that use TLS ("required",
	// pg_hba's hostssl) or that do not ("forbidden", hostnossl). Either
	// makes the rule skip Unix-socket clients, as those lines do. Empty =
	// any client the cidr covers.
	TLS AccessTLSMode `yaml:"tls"`
}

// AccessTLS are the values of access[].tls.
var AccessTLS = slices.Clone(accessTLSNames[AccessTLSRequired:])

// Defaults of the failed-login limiter (limits.auth_failure_*).
const (
	DefaultAuthFailuresPerMinute = 60
	DefaultAuthFailureBurst      = 10
)

// AccessMethods are the values of access[].method.
var AccessMethods = slices.Clone(authMethodNames[AuthSCRAM:])

// AccessRules returns the access list compiled for matching; empty when
// there is none (every client may try to log in). Parse compiles it once;
// on a hand-built Config it is compiled on each call, and a rule whose
// cidr does not parse refuses every client (fail closed).
func (c *Config) AccessRules() access.Rules {
	if c.accessRules != nil || len(c.Access) == 0 {
		return c.accessRules
	}
	rules, _ := compileAccess(c.Access)
	return rules
}

// compileAccess builds the rules, reporting the index and error of the
// first bad cidr; a bad rule is compiled as "all, reject".
func compileAccess(list []AccessRule) (access.Rules, map[int]error) {
	rules := make(access.Rules, len(list))
	var errs map[int]error
	for i, r := range list {
		src, err := access.ParseSource(r.CIDR)
		method := r.Method.String() // the access package's own spellings (modes.go)
		if err != nil {
			if errs == nil {
				errs = map[int]error{}
			}
			errs[i] = err
			src, _ = access.ParseSource(access.SourceAll)
			method = access.MethodReject
		}
		rules[i] = access.Rule{Source: src, Users: r.Users, Databases: r.Databases, Method: method, TLS: r.TLS.String()}
	}
	return rules, errs
}

// validateAccess checks the access list and limits.auth_failure_*, and
// compiles the rules into cfg. Users and databases named in rules must be
// configured: a typo in a reject rule would otherwise silently not apply.
func validateAccess(cfg *Config, c *collector) {
	if cfg.Limits.AuthFailureBurst < 0 || cfg.Limits.AuthFailureBurst > 1_000_000 {
		c.invalid("limits.auth_failure_burst", "must be between 0 (no limit) and 1000000, got %d", cfg.Limits.AuthFailureBurst)
	}
	if cfg.Limits.AuthFailureBurst != 0 {
		intRange(c, "limits.auth_failures_per_minute", cfg.Limits.AuthFailuresPerMinute, 1, 1_000_000)
	} else if cfg.Limits.AuthFailuresPerMinute < 0 {
		c.invalid("limits.auth_failures_per_minute", "must not be negative, got %d", cfg.Limits.AuthFailuresPerMinute)
	}

	rules, errs := compileAccess(cfg.Access)
	for i, r := range cfg.Access {
		p := index("access", i)
		if err := errs[i]; err != nil {
			c.invalid(p+".cidr", "%s", err)
		}
		if r.Method != AuthUnset {
			enum(c, p+".method", c.spelled(p+".method", r.Method), AccessMethods)
		}
		if r.TLS != AccessTLSAny {
			enum(c, p+".tls", c.spelled(p+".tls", r.TLS), AccessTLS)
			if r.CIDR == access.SourceLocal {
				c.invalid(p+".tls", "a rule with tls set only matches TCP clients (like pg_hba's hostssl and hostnossl), so with cidr local it matches nobody; leave tls out")
			} else if r.TLS == AccessTLSRequired && cfg.TLS.Mode == TLSDisable {
				c.invalid(p+".tls", "required matches no client while tls.mode is disable (no client can use TLS); set tls.mode to allow or require")
			}
		}
		for j, name := range r.Users {
			u := cfg.User(name)
			if u == nil {
				c.invalid(index(p+".users", j), "unknown user %q (not in users[]; leave users out to match any user)", name)
				continue
			}
			if u.Password == "" && slices.Contains(AuthMethods, r.Method.String()) && !passwordless(r.Method) && cfg.Auth.AuthUser == "" {
				c.invalid(p+".method", "user %q has no password, so %s can never let it in; use trust, token or cert, or give the user a password (or set auth.auth_user)", name, r.Method)
			}
		}
		for j, name := range r.Databases {
			if _, ok := cfg.Databases[name]; !ok {
				c.invalid(index(p+".databases", j), "unknown database %q (not in databases; leave databases out to match any database)", name)
			}
		}
	}
	if len(rules) > 0 {
		cfg.accessRules = rules
	}
}

// AccessMethod is the typed method override of the access rule that
// decided d (access.Decision.Rule indexes Access, which AccessRules
// compiles in order): AuthReject for a refusal by a rule, else the rule's
// method, AuthUnset when no rule matched or the rule sets none.
func (c *Config) AccessMethod(d access.Decision) AuthMethod {
	if d.Rule < 0 || d.Rule >= len(c.Access) {
		return AuthUnset
	}
	if d.Method == access.MethodReject { // also a rule whose cidr did not compile
		return AuthReject
	}
	return c.Access[d.Rule].Method
}
