package config

import (
	"slices"
	"sort"
)

// validateAdmin checks the console's users and the HTTP API's token and
// TLS: console users must be users[] entries (they log in like any
// user), the token comes from the file or the value (with ${ENV}), and
// the console's database names cannot also be configured databases.
func validateAdmin(cfg *Config, c *collector, src sources) {
	a := &cfg.Admin
	for _, l := range []struct {
		key   string
		names []string
	}{{"admin.users", a.Users}, {"admin.stats_users", a.StatsUsers}} {
		for i, n := range l.names {
			switch {
			case n == "":
				c.invalid(index(l.key, i), "a user name is required")
			case cfg.User(n) == nil:
				c.invalid(index(l.key, i), "%q is not in users[] (console users log in like any user and need an entry there)", n)
			case l.key == "admin.stats_users" && slices.Contains(a.Users, n):
				c.invalid(index(l.key, i), "%q is already in admin.users (which may run everything)", n)
			}
		}
	}
	if a.ConsoleEnabled() {
		names := make([]string, 0, len(cfg.Databases))
		for name := range cfg.Databases {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if slices.Contains(ConsoleDatabases, name) {
				c.invalid(join("databases", name), "the name %q is reserved for the admin console (admin.users / admin.stats_users are set); give the database another name and set dbname: %s", name, name)
			}
		}
	}
	if a.APITokenFile != "" {
		if a.APIToken != "" {
			c.invalid("admin.api_token_file", "set either api_token or api_token_file, not both")
		} else if v, err := readSecret(a.APITokenFile, src.readFile); err != nil {
			c.invalid("admin.api_token_file", "%s", err)
		} else {
			a.APIToken = v
		}
	} else if v, err := expandEnv(a.APIToken, src.env); err != nil {
		c.invalid("admin.api_token", "%s", err)
	} else {
		a.APIToken = v
		if a.APIToken != "" && len(a.APIToken) < 16 {
			c.invalid("admin.api_token", "too short: use at least 16 characters (for example `openssl rand -hex 32`)")
		}
	}
	if a.APIReadRequiresToken && a.APIToken == "" && a.APITokenFile == "" {
		c.invalid("admin.api_read_requires_token", "needs admin.api_token or admin.api_token_file")
	}
	if (a.TLSCertFile == "") != (a.TLSKeyFile == "") {
		c.invalid("admin.tls_cert_file", "set admin.tls_cert_file and admin.tls_key_file together")
	}
}
