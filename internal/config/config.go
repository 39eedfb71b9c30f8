// Package config loads and validates sluice's YAML configuration file.
//
// The loader is deliberately strict and exhaustive: Parse walks the YAML node
// tree itself (instead of relying on yaml.Unmarshal, which stops at the first
// error) so that it can report every unknown key, type error and invalid
// value in one go, each with the full key path and, where known, the line.
// `sluice check-config` prints the resulting Problems one per line.
//
// A *Config returned by Parse or Load has all defaults applied and is
// immutable by convention: callers share it read-only between goroutines.
// The reference for each key is docs/configuration.md (a test keeps the two
// in sync).
package config

import (
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/internal/access"
)

// Config is the root of sluice's configuration file.
type Config struct {
	Listen          Listen               `yaml:"listen"`
	Admin           Admin                `yaml:"admin"`
	Log             Log                  `yaml:"log"`
	Auth            Auth                 `yaml:"auth"`
	Limits          Limits               `yaml:"limits"`
	TLS             TLS                  `yaml:"tls"`
	Token           Token                `yaml:"token"`
	ShutdownTimeout Duration             `yaml:"shutdown_timeout"` // default 30s
	Users           []User               `yaml:"users"`
	Databases       map[string]*Database `yaml:"databases"` // required, at least one
	// Access is the client allow-list (see AccessRule); empty allows all.
	Access []AccessRule `yaml:"access"`
	// Cluster joins a fleet of sluices through etcd (off by default).
	Cluster Cluster `yaml:"cluster"`

	accessRules access.Rules // compiled from Access by Parse
}

// Listen configures where sluice accepts PostgreSQL clients.
type Listen struct {
	// Address is the TCP "host:port" clients connect to. Default 127.0.0.1:6432.
	Address string `yaml:"address"`
	// SocketDir, when non-empty, also listens on the Unix socket
	// <socket_dir>/.s.PGSQL.<port of Address> (see SocketPath).
	SocketDir string `yaml:"socket_dir"`
	// ReadOnlyAddress, when non-empty, is a second TCP listener whose
	// clients are served by standbys (see Database.ReadOnlyFallback).
	ReadOnlyAddress string `yaml:"read_only_address"`
}

// Admin configures the admin/metrics HTTP endpoint, its API, and the
// SQL admin console (the virtual databases "sluice" and "pgbouncer").
type Admin struct {
	// Address is the HTTP "host:port". Default 127.0.0.1:9930. An explicit
	// empty string disables the endpoint (an absent key keeps the default).
	Address string `yaml:"address"`
	// Users may run every console command; StatsUsers only SHOW
	// (PgBouncer's admin_users and stats_users). Each names a users[]
	// entry, which logs in as any user does. Both empty (the default)
	// turns the console off.
	Users      []string `yaml:"users"`
	StatsUsers []string `yaml:"stats_users"`
	// APIToken is the bearer token the HTTP API's mutating calls (and,
	// with APIReadRequiresToken, its reads) need; ${ENV} is expanded.
	// APITokenFile names a file holding it instead. Unset: mutating calls
	// are refused (403).
	APIToken             string `yaml:"api_token"`
	APITokenFile         string `yaml:"api_token_file"`
	APIReadRequiresToken bool   `yaml:"api_read_requires_token"` // default false
	// TLSCertFile and TLSKeyFile, set together, serve the endpoint over
	// HTTPS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// Pprof serves Go's profiler at /debug/pprof/ (default false).
	Pprof bool `yaml:"pprof"`
}

// ConsoleDatabases are the virtual databases of the admin console.
var ConsoleDatabases = []string{"sluice", "pgbouncer"}

// ConsoleEnabled reports whether anyone may use the admin console.
func (a *Admin) ConsoleEnabled() bool { return len(a.Users)+len(a.StatsUsers) > 0 }

// ConsoleRole says what a user may do on the console: "admin", "stats"
// or "" (nothing).
func (a *Admin) ConsoleRole(user string) string {
	switch {
	case slices.Contains(a.Users, user):
		return "admin"
	case slices.Contains(a.StatsUsers, user):
		return "stats"
	}
	return ""
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error, default info
	Format string `yaml:"format"` // text|json, default text
}

// TLS configures TLS between clients and sluice (PgBouncer's client_tls_*).
// The files are read when the first TLS client arrives and re-read when
// they change on disk, so certificates can be renewed without a restart.
type TLS struct {
	Mode         TLSMode    `yaml:"mode"`           // disable (default) | allow | require
	CertFile     string     `yaml:"cert_file"`      // PEM certificate chain; required unless mode is disable
	KeyFile      string     `yaml:"key_file"`       // PEM private key; required unless mode is disable
	ClientCAFile string     `yaml:"client_ca_file"` // optional; client certificates, when presented, must chain to it
	MinVersion   TLSVersion `yaml:"min_version"`    // "1.2" (default) | "1.3"
}

// ServerTLS configures TLS from sluice to PostgreSQL, with the meanings of
// libpq's sslmode, sslrootcert, sslcert and sslkey.
type ServerTLS struct {
	Mode     ServerTLSMode `yaml:"mode"`      // disable | prefer (default) | require | verify-ca | verify-full
	CAFile   string        `yaml:"ca_file"`   // PEM CA certificates; required for verify-ca and verify-full
	CertFile string        `yaml:"cert_file"` // optional client certificate presented to the server
	KeyFile  string        `yaml:"key_file"`  // its private key; set with cert_file
}

// Auth configures how clients authenticate to sluice.
type Auth struct {
	Method AuthMethod `yaml:"method"` // scram-sha-256 (default) | md5 | password | trust | token | cert
	// AuthUser names the users[] entry whose server login sluice uses to
	// run AuthQuery (PgBouncer's auth_user). When set, users that are not
	// in users[], or are listed without a password, are looked up with
	// AuthQuery in the database the client asks for. Default "" (off).
	AuthUser string `yaml:"auth_user"`
	// AuthQuery returns (name, stored password) for $1, the user name.
	AuthQuery string `yaml:"auth_query"` // default DefaultAuthQuery
	// AuthQueryCacheTTL is how long a looked-up password is reused per
	// (database, user); 0 looks it up on every login.
	AuthQueryCacheTTL Duration `yaml:"auth_query_cache_ttl"` // default 60s
	// AllowPlaintextPassword lets method password log in over TCP without
	// TLS. It is off by default because that method sends the password in
	// clear: anyone on the path would read it. Unix-socket clients never
	// need it (the socket does not leave the host).
	AllowPlaintextPassword bool `yaml:"allow_plaintext_password"` // default false
}

// Token configures short-lived signed login tokens (auth method token, see
// internal/token): clients send a token from `sluice token` as their
// password. The proxy only ever needs the public key; the private key is
// read by the `sluice token` command alone.
type Token struct {
	// PublicKeyFile is a PEM (PKIX) Ed25519 public key; required when any
	// auth method is token. Read at start-up and on reload.
	PublicKeyFile string `yaml:"public_key_file"`
	// PrivateKeyFile is a PEM (PKCS#8) Ed25519 private key, used only by
	// `sluice token` to sign tokens. Default "".
	PrivateKeyFile string `yaml:"private_key_file"`
}

// Limits protects sluice from too many or too slow clients.
type Limits struct {
	MaxClientConnections int      `yaml:"max_client_connections"` // default 10000; beyond it clients get 53300
	ClientLoginTimeout   Duration `yaml:"client_login_timeout"`   // default 15s; startup+auth must finish within it
	MaxStartupPacket     int      `yaml:"max_startup_packet"`     // default 10000 bytes (as PostgreSQL)
	// MaxMessageSize bounds one client message after login, counted as
	// its length field counts it (body + 4). Larger ones get 54000 and
	// the connection is closed. sluice streams large messages, so the
	// bound protects the server (which holds a whole message), not sluice.
	MaxMessageSize    int      `yaml:"max_message_size"`    // default 1 GiB - 1 (PostgreSQL's own limit)
	ClientIdleTimeout Duration `yaml:"client_idle_timeout"` // default 0 = none; idle sessions are closed with 57P01
	// IdleTransactionTimeout ends a transaction-pooled client that sits
	// idle inside a transaction while holding a server connection (25P03).
	IdleTransactionTimeout Duration `yaml:"idle_transaction_timeout"` // default 0 = none
	// MaxPendingNotifications bounds, per transaction-pooled client, the
	// notifications the LISTEN fan-out (internal/notify) holds for it;
	// beyond it the oldest are dropped and the client is told with a
	// NoticeResponse. 0 turns the fan-out off: LISTEN pins the client.
	MaxPendingNotifications int `yaml:"max_pending_notifications"` // default 1000
	// Failed logins per source address: each takes a token from a bucket
	// of AuthFailureBurst tokens refilled at AuthFailuresPerMinute; an
	// address with none left is refused with 28000. Burst 0 disables.
	AuthFailuresPerMinute int `yaml:"auth_failures_per_minute"` // default 60
	AuthFailureBurst      int `yaml:"auth_failure_burst"`       // default 10
}

// User is one login role known to sluice.
type User struct {
	Name string `yaml:"name"` // required, unique
	// Password is what clients must present: plaintext, a
	// "SCRAM-SHA-256$..." verifier or "md5<32 hex>". ${ENV_VAR} is expanded.
	Password string `yaml:"password"`
	// ServerPassword is what sluice sends to PostgreSQL for this user.
	// ${ENV_VAR} is expanded. Defaults to Password when Password is
	// plaintext, else "" (the server must then not ask for a password).
	ServerPassword string `yaml:"server_password"`
	// AuthMethod optionally overrides auth.method for this user.
	AuthMethod AuthMethod `yaml:"auth_method"`
	// PasswordFile and ServerPasswordFile name files holding Password and
	// ServerPassword (one trailing newline is dropped), read at load and
	// on each reload; each excludes its inline counterpart.
	PasswordFile       string `yaml:"password_file"`
	ServerPasswordFile string `yaml:"server_password_file"`
}

// Database is one logical database clients can connect to.
type Database struct {
	Name     string   `yaml:"-"`         // the map key (name clients connect to); set by the loader
	Hosts    []string `yaml:"hosts"`     // required, non-empty; with several, roles come from the servers (see failover)
	DBName   string   `yaml:"dbname"`    // database name on the server; default: the key
	PoolMode PoolMode `yaml:"pool_mode"` // default "session"; or "transaction", "statement"
	Pool     Pool     `yaml:"pool"`
	Backend  Backend  `yaml:"backend"`
	// ServerTLS is TLS to this database's servers.
	ServerTLS ServerTLS `yaml:"server_tls"`
	// High availability (used when hosts lists more than one server).
	HealthCheckInterval Duration `yaml:"health_check_interval"` // default 1s; how often each host's role is probed
	HealthCheckTimeout  Duration `yaml:"health_check_timeout"`  // default 5s; bounds one probe (connect, login, query), whatever the interval
	MaxReplicaLag       Duration `yaml:"max_replica_lag"`       // default 10s; standbys further behind get no read-only clients
	ReadOnlyFallback    string   `yaml:"read_only_fallback"`    // "primary" (default) or "refuse" when no standby qualifies
	Failover            Failover `yaml:"failover"`
}

// Failover configures primary detection and promotion for a database.
type Failover struct {
	// User names the users[] entry whose server login probes the hosts
	// and promotes (pg_monitor and EXECUTE on pg_promote, or superuser).
	// Required when hosts lists more than one server.
	User         string   `yaml:"user"`
	AutoPromote  bool     `yaml:"auto_promote"`  // default false; promote the best standby when the primary is gone
	PromoteAfter Duration `yaml:"promote_after"` // default 10s of primary silence before auto_promote acts
}

// Pool sizes the per-(database, user) pool of server connections.
type Pool struct {
	MinSize int `yaml:"min_size"` // default 0; opened at start-up for every configured user
	MaxSize int `yaml:"max_size"` // default 20; >= 1 and >= min_size
	// MaxDBConnections is PgBouncer's max_db_connections: the most server
	// connections to this database, all users' pools together; with
	// cluster: set, the whole fleet's, divided among the live instances
	// through etcd (internal/cluster budget). 0 = no such limit.
	MaxDBConnections int      `yaml:"max_db_connections"` // default 0
	BorrowTimeout    Duration `yaml:"borrow_timeout"`     // default 120s; 0 = reject at once (53300)
	// Health maintenance (0 disables each).
	IdleTimeout       Duration `yaml:"idle_timeout"`        // default 10m; idle connections unused longer are recycled
	MaxLifetime       Duration `yaml:"max_lifetime"`        // default 1h, jittered ±10%; connections are retired after it
	HealthCheckPeriod Duration `yaml:"health_check_period"` // default 60s; how often idle connections are checked
	// MaxPreparedStatements bounds the protocol-level prepared statements
	// sluice keeps on each server connection in transaction and statement
	// mode (least recently used are closed first).
	MaxPreparedStatements int `yaml:"max_prepared_statements"` // default 500
	// PinPolicy says what transaction and statement mode do with a
	// statement that would pin the client to its server connection
	// (a temp table, a session advisory lock, ...): pin it (default), or
	// refuse it with 0A000, for operators who prefer failing fast to an
	// exhausted pool. Applies at RELOAD, to connected clients too.
	PinPolicy PinPolicy `yaml:"pin_policy"` // default "pin"; or "error"
}

// Backend tunes server connections (names follow GatewayD's client settings).
type Backend struct {
	Network            string   `yaml:"network"`              // tcp | unix; default: from the host ("/dir:port" is unix)
	ReceiveChunkSize   int      `yaml:"receive_chunk_size"`   // default 8192; 512..1<<20
	SendDeadline       Duration `yaml:"send_deadline"`        // default 0 = none; write deadline set on each send
	ReceiveDeadline    Duration `yaml:"receive_deadline"`     // default 0 = none; read deadline set on each receive
	ReceiveTimeout     Duration `yaml:"receive_timeout"`      // default 0 = wait forever; else a silent query is cancelled (57014)
	TCPKeepalive       Duration `yaml:"tcp_keepalive"`        // default 30s; 0 disables
	DialTimeout        Duration `yaml:"dial_timeout"`         // default 60s; 0 disables
	Retries            int      `yaml:"retries"`              // default 3; 0 disables retrying
	Backoff            Duration `yaml:"backoff"`              // default 1s; 0 disables waiting
	BackoffMultiplier  float64  `yaml:"backoff_multiplier"`   // default 2; 0 disables growth
	DisableBackoffCaps bool     `yaml:"disable_backoff_caps"` // default false
}

// Default values, exported so that other packages and docs can refer to them.
const (
	DefaultListenAddress         = "127.0.0.1:6432"
	DefaultAdminAddress          = "127.0.0.1:9930"
	DefaultLogLevel              = "info"
	DefaultLogFormat             = "text"
	DefaultAuthMethod            = AuthSCRAM
	DefaultAuthQuery             = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"
	DefaultAuthQueryCacheTTL     = 60 * time.Second
	DefaultShutdownTimeout       = 30 * time.Second
	DefaultMaxClientConnections  = 10000
	DefaultClientLoginTimeout    = 15 * time.Second
	DefaultMaxStartupPacket      = 10000
	DefaultMaxMessageSize        = 1<<30 - 1
	DefaultMaxPendingNotify      = 1000
	DefaultPoolMode              = PoolSession
	DefaultPoolMinSize           = 0
	DefaultPoolMaxSize           = 20
	DefaultBorrowTimeout         = 120 * time.Second
	DefaultIdleTimeout           = 10 * time.Minute
	DefaultMaxLifetime           = time.Hour
	DefaultHealthCheckPeriod     = 60 * time.Second
	DefaultMaxPreparedStatements = 500
	DefaultHealthCheckInterval   = time.Second
	DefaultHealthCheckTimeout    = 5 * time.Second
	DefaultMaxReplicaLag         = 10 * time.Second
	DefaultReadOnlyFallback      = "primary"
	DefaultPromoteAfter          = 10 * time.Second
	DefaultTCPKeepalive          = 30 * time.Second
	DefaultReceiveChunkSize      = 8192
	DefaultDialTimeout           = 60 * time.Second
	DefaultRetries               = 3
	DefaultBackoff               = time.Second
	DefaultBackoffMultiplier     = 2.0
	DefaultTLSMode               = TLSDisable
	DefaultTLSMinVersion         = TLS12
	// DefaultServerTLSMode is libpq's default sslmode: TLS when the server
	// offers it, plain otherwise. It protects against passive snooping only.
	DefaultServerTLSMode = ServerTLSPrefer
)

// Allowed enum values, in the order they are listed in problems and docs.
// The typed modes' lists are copies of their names tables (modes.go).
var (
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"text", "json"}
	// AuthMethods are the values of auth.method and users[].auth_method.
	AuthMethods = slices.Clone(authMethodNames[AuthSCRAM:AuthReject])
	PoolModes   = slices.Clone(poolModeNames)
	// ReadOnlyFallbacks say what a read-only client gets when no standby qualifies.
	ReadOnlyFallbacks = []string{"primary", "refuse"}
	Networks          = []string{"tcp", "unix"}
	TLSModes          = slices.Clone(tlsModeNames)
	TLSVersions       = slices.Clone(tlsVersionNames)
	// ServerTLSModes are libpq's sslmode values (except allow).
	ServerTLSModes = slices.Clone(serverTLSModeNames)
	PinPolicies    = slices.Clone(pinPolicyNames)
)

// Defaults returns a Config holding every top-level default (no users,
// no databases), for listing defaults (the console's SHOW CONFIG).
func Defaults() *Config { return defaultConfig() }

// defaultConfig returns a Config with every top-level default filled in.
// Databases get their defaults from defaultDatabase when the loader creates
// them; users have no defaults other than ServerPassword (see finishUser).
func defaultConfig() *Config {
	return &Config{
		Listen:          Listen{Address: DefaultListenAddress},
		Admin:           Admin{Address: DefaultAdminAddress},
		Log:             Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Auth:            Auth{Method: DefaultAuthMethod, AuthQuery: DefaultAuthQuery, AuthQueryCacheTTL: Duration(DefaultAuthQueryCacheTTL)},
		TLS:             TLS{Mode: DefaultTLSMode, MinVersion: DefaultTLSMinVersion},
		ShutdownTimeout: Duration(DefaultShutdownTimeout),
		Cluster: Cluster{Prefix: DefaultClusterPrefix, LeaseTTL: Duration(DefaultClusterLeaseTTL),
			Etcd: Etcd{DialTimeout: Duration(DefaultEtcdDialTimeout)}},
		Limits: Limits{
			MaxClientConnections:    DefaultMaxClientConnections,
			ClientLoginTimeout:      Duration(DefaultClientLoginTimeout),
			MaxStartupPacket:        DefaultMaxStartupPacket,
			MaxMessageSize:          DefaultMaxMessageSize,
			MaxPendingNotifications: DefaultMaxPendingNotify,
			AuthFailuresPerMinute:   DefaultAuthFailuresPerMinute,
			AuthFailureBurst:        DefaultAuthFailureBurst,
		},
	}
}

func defaultDatabase(name string) *Database {
	return &Database{
		Name:     name,
		PoolMode: DefaultPoolMode,
		Pool: Pool{
			MinSize:               DefaultPoolMinSize,
			MaxSize:               DefaultPoolMaxSize,
			BorrowTimeout:         Duration(DefaultBorrowTimeout),
			IdleTimeout:           Duration(DefaultIdleTimeout),
			MaxLifetime:           Duration(DefaultMaxLifetime),
			HealthCheckPeriod:     Duration(DefaultHealthCheckPeriod),
			MaxPreparedStatements: DefaultMaxPreparedStatements,
		},
		Backend: Backend{
			ReceiveChunkSize:  DefaultReceiveChunkSize,
			DialTimeout:       Duration(DefaultDialTimeout),
			TCPKeepalive:      Duration(DefaultTCPKeepalive),
			Retries:           DefaultRetries,
			Backoff:           Duration(DefaultBackoff),
			BackoffMultiplier: DefaultBackoffMultiplier,
		},
		ServerTLS:           ServerTLS{Mode: DefaultServerTLSMode},
		HealthCheckInterval: Duration(DefaultHealthCheckInterval),
		HealthCheckTimeout:  Duration(DefaultHealthCheckTimeout),
		MaxReplicaLag:       Duration(DefaultMaxReplicaLag),
		ReadOnlyFallback:    DefaultReadOnlyFallback,
		Failover:            Failover{PromoteAfter: Duration(DefaultPromoteAfter)},
	}
}

// User returns the user called name, or nil if there is none.
func (c *Config) User(name string) *User {
	for i := range c.Users {
		if c.Users[i].Name == name {
			return &c.Users[i]
		}
	}
	return nil
}

// EffectiveAuthMethod is the user's auth_method override, or global
// (normally Config.Auth.Method) when the user has none.
func (u *User) EffectiveAuthMethod(global AuthMethod) AuthMethod {
	if u.AuthMethod != AuthUnset {
		return u.AuthMethod
	}
	return global
}

// PrimaryHost is Hosts[0], parsed. Parse has validated it, so on a loaded
// Config the result is always usable; on a hand-built Database with a bad or
// missing host it returns the zero Host.
func (d *Database) PrimaryHost() Host {
	if len(d.Hosts) == 0 {
		return Host{}
	}
	h, err := ParseHost(d.Hosts[0])
	if err != nil {
		return Host{}
	}
	return h
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("250ms", "30s", "2m").
type Duration time.Duration

// D converts to time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration ("1m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML lets Duration be decoded by plain yaml.Unmarshal too.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
