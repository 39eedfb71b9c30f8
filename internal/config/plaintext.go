package config

import "slices"

// methodSetAt returns the first key that sets method: auth.method, else a
// users[].auth_method, else an access[].method; "" when none does. The
// checks that tie a method to other settings name this key in their
// problem, so the reader knows which line asked for it.
func methodSetAt(cfg *Config, method AuthMethod) string {
	if cfg.Auth.Method == method {
		return "auth.method"
	}
	if i := slices.IndexFunc(cfg.Users, func(u User) bool { return u.AuthMethod == method }); i >= 0 {
		return index("users", i) + ".auth_method"
	}
	if i := slices.IndexFunc(cfg.Access, func(r AccessRule) bool { return r.Method == method }); i >= 0 {
		return index("access", i) + ".method"
	}
	return ""
}

// validatePlaintextPassword catches a method password that could never
// log anyone in: sluice refuses it over unencrypted TCP (the password
// would cross the network in clear) unless auth.allow_plaintext_password
// is set, so with tls.mode disable it only works on the Unix socket, and
// without listen.socket_dir there is none.
func validatePlaintextPassword(cfg *Config, c *collector) {
	if cfg.Auth.AllowPlaintextPassword || cfg.TLS.Mode != TLSDisable || cfg.Listen.SocketDir != "" {
		return
	}
	if where := methodSetAt(cfg, AuthPassword); where != "" {
		c.invalid("tls.mode", "must be allow or require because %s is password: sluice refuses passwords sent in clear over TCP, and without listen.socket_dir no client could log in; or set auth.allow_plaintext_password: true to accept them unencrypted", where)
	}
}
