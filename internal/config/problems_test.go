package config

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// db is a valid database entry to which cases add keys.
const db = "databases:\n  appdb:\n    hosts: [\"127.0.0.1:5432\"]\n"
const user = "users:\n  - name: app\n    password: secret\n"

// TestProblems checks each kind of problem: every want line must be a prefix
// of one reported problem, and nothing else may be reported.
func TestProblems(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		env  map[string]string
		want []string
	}{
		{"empty file", "", nil, []string{"databases: at least one database is required"}},
		{"empty databases", user + "databases: {}\n", nil, []string{"databases: at least one database is required"}},
		{"not a mapping", "- a\n- b\n", nil, []string{"the file must be a mapping of settings such as \"databases:\", got a list (line 1)"}},
		{"syntax error", "listen: [\n", nil, []string{"invalid YAML: "}},
		{"two documents", user + db + "---\nlog: {}\n", nil, []string{"the file must hold a single YAML document"}},
		{"unknown key", user + db + "listen:\n  adress: 1.2.3.4:5\n", nil,
			[]string{`listen.adress: unknown key, did you mean "address"? (line 8)`}},
		{"unknown top-level key", user + db + "pgbouncer: {}\n", nil,
			[]string{"pgbouncer: unknown key (known keys here: access, admin, auth, cluster, databases, limits, listen, log, shutdown_timeout, tls, token, users) (line 7)"}},
		{"unknown nested key", user + db + "    pool: {max: 3}\n", nil,
			[]string{"databases.appdb.pool.max: unknown key"}},
		{"unknown user key", "users:\n  - name: app\n    password: x\n    role: admin\n" + db, nil,
			[]string{"users[0].role: unknown key"}},
		{"duplicate key", user + db + "log: {level: info, level: debug}\n", nil,
			[]string{"log.level: duplicate key (first defined on line 7) (line 7)"}},
		{"bad duration", user + db + "    pool: {borrow_timeout: 5 seconds}\n", nil,
			[]string{`databases.appdb.pool.borrow_timeout: invalid duration "5 seconds"`}},
		{"duration without unit", user + db + "shutdown_timeout: 30\n", nil,
			[]string{`shutdown_timeout: invalid duration "30"`}},
		{"duration as mapping", user + db + "shutdown_timeout: {s: 1}\n", nil,
			[]string{`shutdown_timeout: expected a duration such as "30s", got a mapping`}},
		{"string for int", user + db + "limits: {max_client_connections: lots}\n", nil,
			[]string{`limits.max_client_connections: expected an integer, got "lots"`}},
		{"float for int", user + db + "    pool: {max_size: 2.5}\n", nil,
			[]string{`databases.appdb.pool.max_size: expected an integer, got "2.5"`}},
		{"quoted int", user + db + "    pool: {max_size: \"5\"}\n", nil,
			[]string{`databases.appdb.pool.max_size: expected an integer, got "5"`}},
		{"int overflow", user + db + "    pool: {max_size: 99999999999999999999}\n", nil,
			[]string{`databases.appdb.pool.max_size: expected an integer, got "99999999999999999999"`}},
		{"string for bool", user + db + "    backend: {disable_backoff_caps: maybe}\n", nil,
			[]string{`databases.appdb.backend.disable_backoff_caps: expected true or false, got "maybe"`}},
		{"string for float", user + db + "    backend: {backoff_multiplier: double}\n", nil,
			[]string{`databases.appdb.backend.backoff_multiplier: expected a number, got "double"`}},
		{"list for struct", user + db + "listen: [a]\n", nil, []string{"listen: expected a mapping, got a list"}},
		{"mapping for string", user + db + "log: {level: {x: 1}}\n", nil, []string{"log.level: expected a string, got a mapping"}},
		{"scalar for list", user + "databases:\n  appdb:\n    hosts: 127.0.0.1:5432\n", nil,
			[]string{`databases.appdb.hosts: expected a list, got "127.0.0.1:5432"`}},
		{"databases as list", user + "databases: [a]\n", nil,
			[]string{"databases: expected a mapping of database names to settings, got a list"}},
		{"missing hosts", user + "databases:\n  appdb:\n    dbname: x\n", nil, []string{"databases.appdb.hosts: required"}},
		{"null database", user + "databases:\n  appdb:\n", nil, []string{"databases.appdb.hosts: required"}},
		{"empty hosts", user + "databases:\n  appdb: {hosts: []}\n", nil, []string{"databases.appdb.hosts: required"}},
		{"bad host", user + "databases:\n  appdb: {hosts: [\"ok:1\", \"db.local\"], failover: {user: app}}\n", nil,
			[]string{`databases.appdb.hosts[1]: host "db.local" needs a port`}},
		{"missing user name", user + "  - password: x\n" + db, nil, []string{"users[1].name: required (line 4)"}},
		{"duplicate user", user + user[len("users:\n"):] + db, nil,
			[]string{`users[1].name: duplicate user name "app" (also users[0])`}},
		{"missing password", "users: [{name: app}]\n" + db, nil,
			[]string{"users[0].password: required (auth method scram-sha-256)"}},
		{"unset env", user + "  - name: b\n    password: ${FOO}\n" + db, nil,
			[]string{"users[1].password: environment variable FOO is not set (line 5)"}},
		{"unset env server password", "users: [{name: a, password: x, server_password: \"${BAR}\"}]\n" + db, nil,
			[]string{"users[0].server_password: environment variable BAR is not set"}},
		{"unterminated env", "users: [{name: a, password: \"${BAR\"}]\n" + db, nil,
			[]string{"users[0].password: unterminated ${"}},
		{"empty env var", "users: [{name: a, password: \"${E}\"}]\n" + db, map[string]string{"E": ""},
			[]string{"users[0].password: required"}},
		{"md5 with scram", "users: [{name: app, password: " + testMD5 + "}]\n" + db, nil,
			[]string{"users[0].password: an md5 hash cannot be checked with auth method scram-sha-256"}},
		{"scram with md5", "users: [{name: app, password: \"" + testVerifier + "\", auth_method: md5}]\n" + db, nil,
			[]string{"users[0].password: a SCRAM-SHA-256 verifier cannot be checked with auth method md5"}},
		{"malformed scram", "users: [{name: app, password: \"SCRAM-SHA-256$x\"}]\n" + db, nil,
			[]string{"users[0].password: looks like a SCRAM-SHA-256 verifier but is malformed"}},
		{"scram server password", "users: [{name: app, password: x, server_password: \"" + testVerifier + "\"}]\n" + db, nil,
			[]string{"users[0].server_password: a SCRAM-SHA-256 verifier cannot be used to log in to the server"}},
		{"bad log level", user + db + "log: {level: verbose}\n", nil,
			[]string{`log.level: must be one of debug, info, warn or error, got "verbose" (line 7)`}},
		{"bad log format", user + db + "log: {format: xml}\n", nil, []string{`log.format: must be one of text or json, got "xml"`}},
		{"bad auth method", user + db + "auth: {method: ldap}\n", nil,
			[]string{`auth.method: must be one of scram-sha-256, md5, password, trust, token or cert, got "ldap"`}},
		{"bad user auth method", "users: [{name: app, password: x, auth_method: ldap}]\n" + db, nil,
			[]string{`users[0].auth_method: must be one of scram-sha-256, md5, password, trust, token or cert, got "ldap"`}},
		{"bad pool mode", user + db + "    pool_mode: sessions\n", nil,
			[]string{`databases.appdb.pool_mode: must be one of session, transaction or statement, got "sessions"`}},
		{"prepared statements cache", user + db + "    pool: {max_prepared_statements: 0}\n", nil,
			[]string{"databases.appdb.pool.max_prepared_statements: must be between 1 and 100000, got 0"}},
		{"idle transaction timeout", user + db + "limits: {idle_transaction_timeout: -1s}\n", nil,
			[]string{"limits.idle_transaction_timeout: must not be negative"}},
		{"max below min", user + db + "    pool: {min_size: 5, max_size: 2}\n", nil,
			[]string{"databases.appdb.pool.max_size: must be >= min_size (5) (line 7)"}},
		{"max zero", user + db + "    pool: {max_size: 0}\n", nil, []string{"databases.appdb.pool.max_size: must be >= 1, got 0"}},
		{"negative max_db_connections", user + db + "    pool: {max_db_connections: -1}\n", nil,
			[]string{"databases.appdb.pool.max_db_connections: must be >= 0 (0: no limit), got -1 (line 7)"}},
		{"min negative", user + db + "    pool: {min_size: -1}\n", nil, []string{"databases.appdb.pool.min_size: must be >= 0, got -1"}},
		{"negative borrow timeout", user + db + "    pool: {borrow_timeout: -1s}\n", nil,
			[]string{"databases.appdb.pool.borrow_timeout: must not be negative, got -1s"}},
		{"chunk size range", user + db + "    backend: {receive_chunk_size: 100}\n", nil,
			[]string{"databases.appdb.backend.receive_chunk_size: must be between 512 and 1048576, got 100"}},
		{"negative retries", user + db + "    backend: {retries: -1}\n", nil, []string{"databases.appdb.backend.retries: must be >= 0"}},
		{"negative backoff", user + db + "    backend: {backoff: -1s, dial_timeout: -2s}\n", nil,
			[]string{"databases.appdb.backend.dial_timeout: must not be negative", "databases.appdb.backend.backoff: must not be negative"}},
		{"negative multiplier", user + db + "    backend: {backoff_multiplier: -0.5}\n", nil,
			[]string{"databases.appdb.backend.backoff_multiplier: must be a finite number >= 0"}},
		{"infinite multiplier", user + db + "    backend: {backoff_multiplier: .inf}\n", nil,
			[]string{"databases.appdb.backend.backoff_multiplier: must be a finite number >= 0"}},
		{"max clients", user + db + "limits: {max_client_connections: 0}\n", nil,
			[]string{"limits.max_client_connections: must be >= 1, got 0"}},
		{"login timeout", user + db + "limits: {client_login_timeout: 0s}\n", nil,
			[]string{"limits.client_login_timeout: must be > 0, got 0s"}},
		{"startup packet", user + db + "limits: {max_startup_packet: 100}\n", nil,
			[]string{"limits.max_startup_packet: must be between 1024 and 1048576, got 100"}},
		{"message size", user + db + "limits: {max_message_size: 1073741824}\n", nil,
			[]string{"limits.max_message_size: must be between 1024 and 1073741823, got 1073741824"}},
		{"negative shutdown", user + db + "shutdown_timeout: -5s\n", nil, []string{"shutdown_timeout: must not be negative, got -5s"}},
		{"empty listen", user + db + "listen: {address: \"\"}\n", nil, []string{"listen.address: required"}},
		{"bad listen", user + db + "listen: {address: localhost}\n", nil,
			[]string{`listen.address: "localhost" is not a host:port address`}},
		{"bad listen port", user + db + "listen: {address: \"localhost:http\"}\n", nil,
			[]string{`listen.address: port "http" is not a number`}},
		{"bad admin", user + db + "admin: {address: nope}\n", nil, []string{`admin.address: "nope" is not a host:port address`}},
		{"merge of scalar", user + db + "    pool: {<<: 3}\n", nil,
			[]string{"databases.appdb.pool: a merge key (<<) must refer to a mapping"}},
		{"self merge", user + db + "    pool: &p {<<: *p}\n", nil,
			[]string{"databases.appdb.pool: a merge key (<<) refers to the mapping that contains it"}},
		{"non-scalar key", user + db + "log: {[a]: b}\n", nil, []string{"log: keys must be plain names, got a list"}},
		{"quoted db key", user + "databases:\n  \"my.db\": {}\n", nil, []string{`databases["my.db"].hosts: required`}},
		{"empty db key", user + "databases:\n  \"\": {hosts: [\"h:1\"]}\n", nil, []string{`databases[""]: database name (the key) must not be empty`}},
		// High availability.
		{"zero health check interval", user + db + "    health_check_interval: 0s\n", nil,
			[]string{"databases.appdb.health_check_interval: must be > 0, got 0s (line 7)"}},
		{"negative health check interval", user + db + "    health_check_interval: -1s\n", nil,
			[]string{"databases.appdb.health_check_interval: must be > 0, got -1s"}},
		{"zero health check timeout", user + db + "    health_check_timeout: 0s\n", nil,
			[]string{"databases.appdb.health_check_timeout: must be > 0, got 0s (line 7)"}},
		{"negative max replica lag", user + db + "    max_replica_lag: -1s\n", nil,
			[]string{"databases.appdb.max_replica_lag: must not be negative, got -1s"}},
		{"bad read only fallback", user + db + "    read_only_fallback: standby\n", nil,
			[]string{`databases.appdb.read_only_fallback: must be one of primary or refuse, got "standby"`}},
		{"zero promote after", user + db + "    failover: {promote_after: 0s}\n", nil,
			[]string{"databases.appdb.failover.promote_after: must be > 0, got 0s"}},
		{"bad read only address", user + db + "listen: {read_only_address: localhost}\n", nil,
			[]string{`listen.read_only_address: "localhost" is not a host:port address`}},
		{"bad read only port", user + db + "listen: {read_only_address: \"localhost:99999\"}\n", nil,
			[]string{`listen.read_only_address: port 99999 is out of range`}},
		{"read only address is listen address", user + db + "listen: {address: \"127.0.0.1:6432\", read_only_address: \"127.0.0.1:6432\"}\n", nil,
			[]string{`listen.read_only_address: must differ from listen.address "127.0.0.1:6432": the read-only listener needs an address of its own`}},
		{"read only address on default listen address", user + db + "listen: {read_only_address: \"127.0.0.1:6432\"}\n", nil,
			[]string{`listen.read_only_address: must differ from listen.address "127.0.0.1:6432"`}},
		{"read only address overlaps all interfaces", user + db + "listen: {address: \":6432\", read_only_address: \"10.0.0.1:6432\"}\n", nil,
			[]string{`listen.read_only_address: must differ from listen.address ":6432"`}},
		{"unknown failover user", user + db + "    failover: {user: monitor}\n", nil,
			[]string{`databases.appdb.failover.user: unknown user "monitor": the failover user must be in users[] (sluice logs in to every host as it, with its server_password, to learn which is the primary) (line 7)`}},
		{"several hosts need failover user", user + "databases:\n  appdb: {hosts: [\"a:5432\", \"b:5432\"]}\n", nil,
			[]string{"databases.appdb.failover.user: required when hosts lists more than one server: sluice logs in to every host as this users[] entry (with its server_password) to learn which is the primary; its role needs pg_monitor, and EXECUTE on pg_promote for auto_promote (or superuser) (line 5)"}},
		{"auto promote without standby", user + db + "    failover: {user: app, auto_promote: true}\n", nil,
			[]string{"databases.appdb.failover.auto_promote: needs a standby in hosts: only one server is listed, so there is nothing to promote"}},
		{"duplicate host", user + "databases:\n  appdb:\n    hosts: [\"a:5432\", \"b:5432\", \"a:5432\"]\n    failover: {user: app}\n", nil,
			[]string{`databases.appdb.hosts[2]: "a:5432" is the same server as hosts[0]`}},
		{"duplicate unix host", user + "databases:\n  appdb:\n    hosts: [\"/run/pg:5432\", \"/run/pg/:5432\"]\n    failover: {user: app}\n", nil,
			[]string{`databases.appdb.hosts[1]: "/run/pg/:5432" is the same server as hosts[0]`}},
		{"every HA problem at once", user + "databases:\n  appdb:\n    hosts: [\"a:5432\", \"b:5432\"]\n" +
			"    health_check_interval: 0s\n    max_replica_lag: -5s\n    read_only_fallback: wait\n    failover: {auto_promote: true, promote_after: -1s}\n", nil,
			[]string{"databases.appdb.health_check_interval: must be > 0", "databases.appdb.max_replica_lag: must not be negative",
				`databases.appdb.read_only_fallback: must be one of primary or refuse, got "wait"`,
				"databases.appdb.failover.promote_after: must be > 0, got -1s", "databases.appdb.failover.user: required when hosts lists more than one server"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.doc), fakeEnv(tc.env))
			require.Error(t, err)
			require.Nil(t, cfg)
			var ps Problems
			require.True(t, errors.As(err, &ps), "error is %T", err)
			got := strings.Split(err.Error(), "\n")
			require.Len(t, got, len(tc.want), "problems:\n%s", err)
			for _, w := range tc.want {
				require.True(t, hasPrefix(got, w), "want a problem starting %q, got:\n%s", w, err)
			}
		})
	}
}

func hasPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// TestAllProblemsAtOnce checks that problems are collected, not just the
// first one, and that a value that failed to decode is not reported again
// by validation.
func TestAllProblemsAtOnce(t *testing.T) {
	doc := `listen:
  adress: x
log: {level: loud}
users:
  - password: ${NOPE}
databases:
  appdb:
    hosts: []
    pool: {min_size: 4, max_size: two, borrow_timeout: 5 seconds}
`
	_, err := Parse([]byte(doc), nil)
	require.EqualError(t, err, strings.Join([]string{
		`listen.adress: unknown key, did you mean "address"? (line 2)`,
		`databases.appdb.pool.max_size: expected an integer, got "two" (line 9)`,
		`databases.appdb.pool.borrow_timeout: invalid duration "5 seconds": use Go syntax such as "250ms", "30s" or "2m" (line 9)`,
		`log.level: must be one of debug, info, warn or error, got "loud" (line 3)`,
		`users[0].name: required (line 5)`,
		`users[0].password: environment variable NOPE is not set (line 5)`,
		`databases.appdb.hosts: required (a list such as ["127.0.0.1:5432"]) (line 8)`,
	}, "\n"))
}

func TestAliasBombIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("x0: &a0 {<<: {max_size: 1}}\n")
	for i := 1; i < 30; i++ {
		b.WriteString("x" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " {<<: [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + strconv.Itoa(i-1))
		}
		b.WriteString("]}\n")
	}
	b.WriteString(user + "databases:\n  appdb:\n    hosts: [\"h:1\"]\n    pool: *a29\n")
	_, err := Parse([]byte(b.String()), nil)
	require.ErrorContains(t, err, "too complex")
}

func TestNetworkMustMatchHosts(t *testing.T) {
	_, err := Parse([]byte("users: [{name: a, password: b}]\ndatabases:\n  d:\n    hosts: [\"127.0.0.1:5432\"]\n    backend: {network: unix}\n"), nil)
	require.ErrorContains(t, err, `databases.d.hosts[0]: "127.0.0.1:5432" is a tcp address but backend.network is unix`)
	_, err = Parse([]byte("users: [{name: a, password: b}]\ndatabases:\n  d:\n    hosts: [\"127.0.0.1:5432\"]\n    backend: {network: udp}\n"), nil)
	require.ErrorContains(t, err, `databases.d.backend.network: must be one of`)
}
