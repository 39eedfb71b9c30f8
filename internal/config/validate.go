package config

import (
	"math"
	"net"
	"slices"
	"sort"
	"time"
)

// validate checks ranges, enums, required keys and cross-field rules, and
// fills the defaults that depend on other values (dbname, server_password).
// Environment variables are expanded first so that checks see real values.
func validate(cfg *Config, c *collector, src sources) {
	if cfg.Listen.Address == "" {
		c.invalid("listen.address", "required (a host:port such as 127.0.0.1:6432)")
	} else if err := checkListenAddr(cfg.Listen.Address); err != nil {
		c.invalid("listen.address", "%s", err)
	}
	validateReadOnlyAddress(cfg.Listen, c)
	if cfg.Admin.Address != "" {
		if err := checkListenAddr(cfg.Admin.Address); err != nil {
			c.invalid("admin.address", "%s (or \"\" to disable the admin endpoint)", err)
		}
	}
	validateAdmin(cfg, c, src)
	enum(c, "log.level", cfg.Log.Level, LogLevels)
	enum(c, "log.format", cfg.Log.Format, LogFormats)
	enum(c, "auth.method", c.spelled("auth.method", cfg.Auth.Method), AuthMethods)
	nonNegative(c, "shutdown_timeout", cfg.ShutdownTimeout)

	if cfg.Limits.MaxClientConnections < 1 {
		c.invalid("limits.max_client_connections", "must be >= 1, got %d", cfg.Limits.MaxClientConnections)
	}
	if cfg.Limits.ClientLoginTimeout <= 0 {
		c.invalid("limits.client_login_timeout", "must be > 0, got %s", cfg.Limits.ClientLoginTimeout)
	}
	intRange(c, "limits.max_startup_packet", cfg.Limits.MaxStartupPacket, 1024, 1<<20)
	intRange(c, "limits.max_message_size", cfg.Limits.MaxMessageSize, 1024, DefaultMaxMessageSize)
	nonNegative(c, "limits.client_idle_timeout", cfg.Limits.ClientIdleTimeout)
	nonNegative(c, "limits.idle_transaction_timeout", cfg.Limits.IdleTransactionTimeout)
	intRange(c, "limits.max_pending_notifications", cfg.Limits.MaxPendingNotifications, 0, 1000000)
	validateTLS(cfg.TLS, c)

	validateUsers(cfg, c, src)
	validateAccess(cfg, c)
	validateToken(cfg, c)
	validateAuthQuery(cfg, c)
	validateCert(cfg, c)
	validatePlaintextPassword(cfg, c)
	validateCluster(cfg, c, src)

	if len(cfg.Databases) == 0 {
		if !c.bad["databases"] {
			c.add("databases", 0, "at least one database is required")
		}
		return
	}
	names := make([]string, 0, len(cfg.Databases))
	for name := range cfg.Databases {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { // file order, then name
		li, lj := c.lines[join("databases", names[i])], c.lines[join("databases", names[j])]
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		db := cfg.Databases[name]
		if db == nil { // only possible for hand-built configs
			db = defaultDatabase(name)
			cfg.Databases[name] = db
		}
		db.Name = name
		validateDatabase(db, join("databases", name), c)
		validateHA(cfg, db, join("databases", name), c)
	}
}

// validateReadOnlyAddress checks listen.read_only_address: a host:port like
// listen.address, and not one that would collide with it (the same address,
// or the same port where either listens on all interfaces). Port 0 (the
// kernel picks) never collides.
func validateReadOnlyAddress(l Listen, c *collector) {
	ro := l.ReadOnlyAddress
	if ro == "" {
		return
	}
	if err := checkListenAddr(ro); err != nil {
		c.invalid("listen.read_only_address", "%s", err)
		return
	}
	rh, rp, _ := net.SplitHostPort(ro)
	lh, lp, err := net.SplitHostPort(l.Address)
	if err != nil || rp != lp || rp == "0" {
		return
	}
	if rh == lh || anyInterface(rh) || anyInterface(lh) {
		c.invalid("listen.read_only_address", "must differ from listen.address %q: the read-only listener needs an address of its own", l.Address)
	}
}

func anyInterface(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

// validateHA checks the high-availability keys of a database: probe and
// lag settings, read_only_fallback, and failover, whose user must exist
// and is required as soon as there is more than one server to tell apart.
func validateHA(cfg *Config, db *Database, p string, c *collector) {
	seen := map[Host]int{} // a server listed twice would be probed twice and look like two primaries
	for i, h := range db.Hosts {
		ph, err := ParseHost(h)
		if err != nil {
			continue
		}
		ph.Display = ""
		if j, dup := seen[ph]; dup {
			c.invalid(index(p+".hosts", i), "%q is the same server as hosts[%d]", h, j)
			continue
		}
		seen[ph] = i
	}
	if db.HealthCheckInterval <= 0 {
		c.invalid(p+".health_check_interval", "must be > 0, got %s", db.HealthCheckInterval)
	}
	if db.HealthCheckTimeout <= 0 {
		c.invalid(p+".health_check_timeout", "must be > 0, got %s", db.HealthCheckTimeout)
	}
	nonNegative(c, p+".max_replica_lag", db.MaxReplicaLag)
	enum(c, p+".read_only_fallback", db.ReadOnlyFallback, ReadOnlyFallbacks)
	f := db.Failover
	if f.PromoteAfter <= 0 {
		c.invalid(p+".failover.promote_after", "must be > 0, got %s", f.PromoteAfter)
	}
	switch {
	case f.User != "":
		if cfg.User(f.User) == nil {
			c.invalid(p+".failover.user", "unknown user %q: the failover user must be in users[] (sluice logs in to every host as it, with its server_password, to learn which is the primary)", f.User)
		}
	case len(db.Hosts) > 1:
		c.invalid(p+".failover.user", "required when hosts lists more than one server: sluice logs in to every host as this users[] entry (with its server_password) to learn which is the primary; its role needs pg_monitor, and EXECUTE on pg_promote for auto_promote (or superuser)")
	}
	if f.AutoPromote && len(db.Hosts) == 1 {
		c.invalid(p+".failover.auto_promote", "needs a standby in hosts: only one server is listed, so there is nothing to promote")
	}
}

func validateUsers(cfg *Config, c *collector, src sources) {
	firstIndex := map[string]int{}
	for i := range cfg.Users {
		u := &cfg.Users[i]
		p := index("users", i)
		if u.Name == "" {
			c.invalid(p+".name", "required")
		} else if j, dup := firstIndex[u.Name]; dup {
			c.invalid(p+".name", "duplicate user name %q (also users[%d])", u.Name, j)
		} else {
			firstIndex[u.Name] = i
		}
		if u.AuthMethod != AuthUnset {
			enum(c, p+".auth_method", c.spelled(p+".auth_method", u.AuthMethod), AuthMethods)
		}
		var envErr bool
		for _, f := range []struct {
			path, filePath string
			val            *string
			file           string
		}{{p + ".password", p + ".password_file", &u.Password, u.PasswordFile},
			{p + ".server_password", p + ".server_password_file", &u.ServerPassword, u.ServerPasswordFile}} {
			if f.file != "" {
				if *f.val != "" {
					c.invalid(f.filePath, "set either %s or %s, not both", lastKey(f.path), lastKey(f.filePath))
					envErr = true
					continue
				}
				v, err := readSecret(f.file, src.readFile)
				if err != nil {
					c.invalid(f.filePath, "%s", err)
					envErr = true
					continue
				}
				*f.val = v
				continue
			}
			v, err := expandEnv(*f.val, src.env)
			if err != nil {
				c.invalid(f.path, "%s", err)
				envErr = true
				continue
			}
			*f.val = v
		}
		if envErr {
			continue
		}
		checkUserPassword(u, p, cfg, c)
		if u.ServerPassword == "" && u.PasswordKind() == PasswordPlain {
			u.ServerPassword = u.Password
		}
	}
}

func checkUserPassword(u *User, p string, cfg *Config, c *collector) {
	method := u.EffectiveAuthMethod(cfg.Auth.Method)
	methodPath := "auth.method"
	if u.AuthMethod != AuthUnset {
		methodPath = p + ".auth_method"
	}
	kind := u.PasswordKind()
	switch {
	case u.Password == "" && !passwordless(method) && cfg.Auth.AuthUser == "":
		c.invalid(p+".password", "required (auth method %s); only users with auth_method trust, token or cert may have none, or set auth.auth_user to look passwords up with auth.auth_query", c.spelled(methodPath, method))
	case kind == PasswordSCRAM:
		if err := checkSCRAM(u.Password); err != nil {
			c.invalid(p+".password", "looks like a SCRAM-SHA-256 verifier but is malformed: %s", err)
		} else if method == AuthMD5 {
			c.invalid(p+".password", "a SCRAM-SHA-256 verifier cannot be checked with auth method md5: give the plaintext password or an md5 hash, or use scram-sha-256")
		}
	case kind == PasswordMD5 && method == AuthSCRAM:
		c.invalid(p+".password", "an md5 hash cannot be checked with auth method scram-sha-256: give the plaintext password or a SCRAM-SHA-256 verifier, or use md5")
	}
	if ClassifyPassword(u.ServerPassword) == PasswordSCRAM {
		c.invalid(p+".server_password", "a SCRAM-SHA-256 verifier cannot be used to log in to the server: give the plaintext password")
	}
}

func validateDatabase(db *Database, p string, c *collector) {
	if db.Name == "" {
		c.invalid(p, "database name (the key) must not be empty")
	}
	if len(db.Hosts) == 0 {
		c.invalid(p+".hosts", "required (a list such as [\"127.0.0.1:5432\"])")
	}
	for i, h := range db.Hosts {
		if _, err := ParseHost(h); err != nil {
			c.invalid(index(p+".hosts", i), "%s", err)
		}
	}
	if db.DBName == "" {
		db.DBName = db.Name
	}
	enum(c, p+".pool_mode", c.spelled(p+".pool_mode", db.PoolMode), PoolModes)

	if db.Pool.MinSize < 0 {
		c.invalid(p+".pool.min_size", "must be >= 0, got %d", db.Pool.MinSize)
	}
	if db.Pool.MaxSize < 1 {
		c.invalid(p+".pool.max_size", "must be >= 1, got %d", db.Pool.MaxSize)
	} else if db.Pool.MaxSize < db.Pool.MinSize && !c.bad[p+".pool.min_size"] {
		c.invalid(p+".pool.max_size", "must be >= min_size (%d)", db.Pool.MinSize)
	}
	if db.Pool.MaxDBConnections < 0 {
		c.invalid(p+".pool.max_db_connections", "must be >= 0 (0: no limit), got %d", db.Pool.MaxDBConnections)
	}
	nonNegative(c, p+".pool.borrow_timeout", db.Pool.BorrowTimeout)
	nonNegative(c, p+".pool.idle_timeout", db.Pool.IdleTimeout)
	nonNegative(c, p+".pool.max_lifetime", db.Pool.MaxLifetime)
	nonNegative(c, p+".pool.health_check_period", db.Pool.HealthCheckPeriod)
	intRange(c, p+".pool.max_prepared_statements", db.Pool.MaxPreparedStatements, 1, 100000)
	enum(c, p+".pool.pin_policy", c.spelled(p+".pool.pin_policy", db.Pool.PinPolicy), PinPolicies)

	b := db.Backend
	if b.Network != "" {
		enum(c, p+".backend.network", b.Network, Networks)
		for i, h := range db.Hosts {
			if ph, err := ParseHost(h); err == nil && (b.Network == "tcp" || b.Network == "unix") && ph.Network != b.Network {
				c.invalid(index(p+".hosts", i), "%q is a %s address but backend.network is %s (\"/dir:port\" is a Unix socket)", h, ph.Network, b.Network)
			}
		}
	}
	intRange(c, p+".backend.receive_chunk_size", b.ReceiveChunkSize, 512, 1<<20)
	nonNegative(c, p+".backend.send_deadline", b.SendDeadline)
	nonNegative(c, p+".backend.receive_deadline", b.ReceiveDeadline)
	nonNegative(c, p+".backend.receive_timeout", b.ReceiveTimeout)
	nonNegative(c, p+".backend.tcp_keepalive", b.TCPKeepalive)
	nonNegative(c, p+".backend.dial_timeout", b.DialTimeout)
	if b.Retries < 0 {
		c.invalid(p+".backend.retries", "must be >= 0 (0 disables retrying), got %d", b.Retries)
	}
	nonNegative(c, p+".backend.backoff", b.Backoff)
	if b.BackoffMultiplier < 0 || math.IsNaN(b.BackoffMultiplier) || math.IsInf(b.BackoffMultiplier, 0) {
		c.invalid(p+".backend.backoff_multiplier", "must be a finite number >= 0 (0 disables growth), got %v", b.BackoffMultiplier)
	}
	validateServerTLS(db, p+".server_tls", c)
}

func enum(c *collector, path, val string, allowed []string) {
	if !slices.Contains(allowed, val) {
		c.invalid(path, "must be one of %s, got %q", oneOf(allowed), val)
	}
}

func nonNegative(c *collector, path string, d Duration) {
	if d < 0 {
		c.invalid(path, "must not be negative, got %s", time.Duration(d))
	}
}

func intRange(c *collector, path string, v, lo, hi int) {
	if v < lo || v > hi {
		c.invalid(path, "must be between %d and %d, got %d", lo, hi, v)
	}
}
