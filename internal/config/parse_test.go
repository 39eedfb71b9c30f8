package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testVerifier is a real SCRAM-SHA-256 verifier for password "secret".
const testVerifier = "SCRAM-SHA-256$4096:c2x1aWNlLXRlc3Qtc2FsdA==$rWgH0z/poR/8QbBw6MYs71cmNXD7xoQx/g/LycJPOaQ=:CKnjHTGJedaCvPpBav/GjghdegtmmOobdmEJsYjyvCc="

// testMD5 is md5("secret" + "app").
const testMD5 = "md56a422f785c9e20873908ce25d1736ae2"

const minimal = `
users:
  - name: app
    password: secret
databases:
  appdb:
    hosts: ["127.0.0.1:5432"]
`

func mustParse(t *testing.T, doc string, env map[string]string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(doc), fakeEnv(env))
	require.NoError(t, err)
	require.NotNil(t, cfg)
	return cfg
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, minimal, nil)
	want := &Config{
		Listen:          Listen{Address: "127.0.0.1:6432"},
		Admin:           Admin{Address: "127.0.0.1:9930"},
		Log:             Log{Level: "info", Format: "text"},
		Auth:            Auth{Method: AuthSCRAM, AuthQuery: DefaultAuthQuery, AuthQueryCacheTTL: Duration(60 * time.Second)},
		TLS:             TLS{Mode: TLSDisable, MinVersion: TLS12},
		ShutdownTimeout: Duration(30 * time.Second),
		Cluster:         Cluster{Prefix: "/sluice/", LeaseTTL: Duration(10 * time.Second), Etcd: Etcd{DialTimeout: Duration(5 * time.Second)}},
		Limits: Limits{
			MaxClientConnections:    10000,
			ClientLoginTimeout:      Duration(15 * time.Second),
			MaxStartupPacket:        10000,
			MaxMessageSize:          1<<30 - 1,
			MaxPendingNotifications: 1000,
			AuthFailuresPerMinute:   60,
			AuthFailureBurst:        10,
		},
		Users: []User{{Name: "app", Password: "secret", ServerPassword: "secret"}},
		Databases: map[string]*Database{"appdb": {
			Name:     "appdb",
			Hosts:    []string{"127.0.0.1:5432"},
			DBName:   "appdb",
			PoolMode: PoolSession,
			Pool: Pool{MinSize: 0, MaxSize: 20, BorrowTimeout: Duration(120 * time.Second),
				IdleTimeout: Duration(10 * time.Minute), MaxLifetime: Duration(time.Hour), HealthCheckPeriod: Duration(time.Minute), MaxPreparedStatements: 500},
			Backend: Backend{
				ReceiveChunkSize:   8192,
				DialTimeout:        Duration(60 * time.Second),
				TCPKeepalive:       Duration(30 * time.Second),
				Retries:            3,
				Backoff:            Duration(time.Second),
				BackoffMultiplier:  2,
				DisableBackoffCaps: false,
			},
			ServerTLS:           ServerTLS{Mode: ServerTLSPrefer},
			HealthCheckInterval: Duration(time.Second),
			HealthCheckTimeout:  Duration(5 * time.Second),
			MaxReplicaLag:       Duration(10 * time.Second),
			ReadOnlyFallback:    "primary",
			Failover:            Failover{User: "", AutoPromote: false, PromoteAfter: Duration(10 * time.Second)},
		}},
	}
	require.Equal(t, want, cfg)
	require.Equal(t, 15*time.Second, cfg.Limits.ClientLoginTimeout.D())
	require.Equal(t, Host{Network: "tcp", Address: "127.0.0.1:5432", Display: "127.0.0.1:5432"}, cfg.Databases["appdb"].PrimaryHost())
	require.Equal(t, "", cfg.Listen.SocketPath())
}

// TestHADefaultsAndValues parses a primary/standby database: the HA keys
// take their defaults when absent, keep what is written otherwise, and an
// empty value (key: ~) means the default as for every other key.
func TestHADefaultsAndValues(t *testing.T) {
	const two = `
users:
  - {name: app, password: secret}
  - {name: monitor, password: m0n}
databases:
  appdb:
    hosts: ["10.0.0.1:5432", "10.0.0.2:5432"]
    failover: {user: monitor}
`
	cfg := mustParse(t, two, nil)
	d := cfg.Databases["appdb"]
	require.Equal(t, "", cfg.Listen.ReadOnlyAddress)
	require.Equal(t, time.Second, d.HealthCheckInterval.D())
	require.Equal(t, 5*time.Second, d.HealthCheckTimeout.D(), "health_check_timeout does not follow the interval")
	require.Equal(t, 10*time.Second, d.MaxReplicaLag.D())
	require.Equal(t, "primary", d.ReadOnlyFallback)
	require.Equal(t, Failover{User: "monitor", PromoteAfter: Duration(10 * time.Second)}, d.Failover)
	nulls := mustParse(t, two+"    health_check_interval: ~\n    health_check_timeout: ~\n    max_replica_lag:\n    read_only_fallback: ~\n", nil).Databases["appdb"]
	require.Equal(t, d, nulls)

	cfg = mustParse(t, `
listen: {address: "0.0.0.0:6432", read_only_address: "0.0.0.0:6433"}
users:
  - {name: app, password: secret}
  - {name: monitor, password: m0n}
databases:
  appdb:
    hosts: ["10.0.0.1:5432", "10.0.0.2:5432"]
    health_check_interval: 250ms
    health_check_timeout: 10s
    max_replica_lag: 0s
    read_only_fallback: refuse
    failover: {user: monitor, auto_promote: true, promote_after: 2s}
`, nil)
	d = cfg.Databases["appdb"]
	require.Equal(t, "0.0.0.0:6433", cfg.Listen.ReadOnlyAddress)
	require.Equal(t, 250*time.Millisecond, d.HealthCheckInterval.D())
	require.Equal(t, 10*time.Second, d.HealthCheckTimeout.D())
	require.Equal(t, time.Duration(0), d.MaxReplicaLag.D())
	require.Equal(t, "refuse", d.ReadOnlyFallback)
	require.Equal(t, Failover{User: "monitor", AutoPromote: true, PromoteAfter: Duration(2 * time.Second)}, d.Failover)

	// Port 0 (the kernel picks, as tests do) never collides, nor do two
	// different addresses on the same port.
	for _, l := range []string{`{address: "127.0.0.1:0", read_only_address: "127.0.0.1:0"}`,
		`{address: "127.0.0.1:6432", read_only_address: "127.0.0.2:6432"}`} {
		require.NotEmpty(t, mustParse(t, minimal+"listen: "+l+"\n", nil).Listen.ReadOnlyAddress)
	}
}

func TestAdminAddressAbsentNullEmpty(t *testing.T) {
	require.Equal(t, DefaultAdminAddress, mustParse(t, minimal+"admin: {}\n", nil).Admin.Address)
	require.Equal(t, DefaultAdminAddress, mustParse(t, minimal+"admin:\n  address:\n", nil).Admin.Address)
	require.Equal(t, "", mustParse(t, minimal+"admin:\n  address: \"\"\n", nil).Admin.Address)
	require.Equal(t, "0.0.0.0:1", mustParse(t, minimal+"admin:\n  address: 0.0.0.0:1\n", nil).Admin.Address)
}

func TestUserPasswordsAndEnv(t *testing.T) {
	doc := `
users:
  - name: plain
    password: ${APP_PW}
  - name: scram
    password: ` + testVerifier + `
    server_password: ${SERVER_PW}
  - name: hashed
    password: ` + testMD5 + `
    auth_method: md5
  - name: dollars
    password: "pa$$word$"
    server_password: other
  - name: nopw
    auth_method: trust
databases:
  appdb:
    hosts: ["/run/postgresql:5432"]
    dbname: real_name
`
	cfg := mustParse(t, doc, map[string]string{"APP_PW": "from-env", "SERVER_PW": "srv"})
	require.Equal(t, User{Name: "plain", Password: "from-env", ServerPassword: "from-env"}, *cfg.User("plain"))
	require.Equal(t, User{Name: "scram", Password: testVerifier, ServerPassword: "srv"}, *cfg.User("scram"))
	require.Equal(t, User{Name: "hashed", Password: testMD5, AuthMethod: AuthMD5}, *cfg.User("hashed"))
	require.Equal(t, User{Name: "dollars", Password: "pa$word$", ServerPassword: "other"}, *cfg.User("dollars"))
	require.Equal(t, "", cfg.User("nopw").Password)
	require.Nil(t, cfg.User("ghost"))
	require.Equal(t, AuthMD5, cfg.User("hashed").EffectiveAuthMethod(cfg.Auth.Method))
	require.Equal(t, AuthSCRAM, cfg.User("plain").EffectiveAuthMethod(cfg.Auth.Method))
	require.Equal(t, "real_name", cfg.Databases["appdb"].DBName)
	require.Equal(t, "unix", cfg.Databases["appdb"].PrimaryHost().Network)
}

func TestEnvOnlyInPasswords(t *testing.T) {
	cfg := mustParse(t, minimal+"log: {level: info}\nlisten: {socket_dir: \"/tmp/${X}\"}\n", map[string]string{"X": "no"})
	require.Equal(t, "/tmp/${X}", cfg.Listen.SocketDir)
}

func TestMergeKeysAndAnchors(t *testing.T) {
	doc := `
users: [{name: app, password: secret}]
databases:
  a: &base
    hosts: ["10.0.0.1:5432"]
    pool: &pool {min_size: 2, max_size: 5}
    backend: {retries: 5}
  b:
    <<: *base
    pool:
      <<: *pool
      max_size: 9
  c:
    <<: [{hosts: ["first:1"]}, {hosts: ["second:2"], dbname: cdb}]
`
	cfg := mustParse(t, doc, nil)
	require.Equal(t, []string{"10.0.0.1:5432"}, cfg.Databases["b"].Hosts)
	require.Equal(t, Pool{MinSize: 2, MaxSize: 9, BorrowTimeout: Duration(DefaultBorrowTimeout), IdleTimeout: Duration(DefaultIdleTimeout), MaxLifetime: Duration(DefaultMaxLifetime), HealthCheckPeriod: Duration(DefaultHealthCheckPeriod), MaxPreparedStatements: DefaultMaxPreparedStatements}, cfg.Databases["b"].Pool)
	require.Equal(t, 5, cfg.Databases["b"].Backend.Retries)
	require.Equal(t, 5, cfg.Databases["a"].Pool.MaxSize)
	require.Equal(t, []string{"first:1"}, cfg.Databases["c"].Hosts, "earlier merged mappings win")
	require.Equal(t, "cdb", cfg.Databases["c"].DBName)
	require.Equal(t, "b", cfg.Databases["b"].Name)
}

func TestValueForms(t *testing.T) {
	doc := minimal + `
limits: {max_client_connections: 0x10, max_startup_packet: 1_024}
shutdown_timeout: 0
databases:
  appdb:
    hosts: ["127.0.0.1:5432"]
    backend: {backoff_multiplier: 3, disable_backoff_caps: true, backoff: 1m30s, dial_timeout: 0s}
`
	// minimal already has a databases key: duplicates are reported with both lines.
	_, err := Parse([]byte(doc), nil)
	require.ErrorContains(t, err, "databases: duplicate key (first defined on line 5)")
	doc = `
users: [{name: app, password: secret}]
limits: {max_client_connections: 0x10, max_startup_packet: 1_024}
shutdown_timeout: 0
databases:
  appdb:
    hosts: ["127.0.0.1:5432"]
    backend: {backoff_multiplier: 3, disable_backoff_caps: true, backoff: 1m30s, dial_timeout: 0s}
`
	cfg := mustParse(t, doc, nil)
	require.Equal(t, 16, cfg.Limits.MaxClientConnections)
	require.Equal(t, 1024, cfg.Limits.MaxStartupPacket)
	require.Equal(t, time.Duration(0), cfg.ShutdownTimeout.D())
	b := cfg.Databases["appdb"].Backend
	require.Equal(t, 3.0, b.BackoffMultiplier)
	require.True(t, b.DisableBackoffCaps)
	require.Equal(t, 90*time.Second, b.Backoff.D())
	require.Equal(t, time.Duration(0), b.DialTimeout.D())
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	t.Setenv("SLUICE_CONFIG_TEST_PW", "from-process-env")
	require.NoError(t, os.WriteFile(path, []byte(`
users: [{name: app, password: "${SLUICE_CONFIG_TEST_PW}"}]
databases: {appdb: {hosts: ["localhost:5432"]}}
`), 0o600))
	cfg, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, "from-process-env", cfg.Users[0].Password)

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	var ps Problems
	require.NotErrorAs(t, err, &ps, "file errors are returned plainly")

	require.NoError(t, os.WriteFile(path, []byte("listen: [\n"), 0o600))
	_, err = Load(path)
	require.ErrorAs(t, err, &ps)
}

func TestProblemFormatting(t *testing.T) {
	ps := Problems{
		{Path: "databases.appdb.pool.max_size", Message: "must be >= min_size (2)"},
		{Message: "invalid YAML: something"},
	}
	require.Equal(t, "databases.appdb.pool.max_size: must be >= min_size (2)", ps[0].String())
	require.Equal(t, "databases.appdb.pool.max_size: must be >= min_size (2)\ninvalid YAML: something", ps.Error())
	require.Equal(t, `databases["my.db"]`, join("databases", "my.db"))
	require.Equal(t, "databases.my-db_1", join("databases", "my-db_1"))
	require.Equal(t, "listen", join("", "listen"))
}
