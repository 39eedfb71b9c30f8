package config

import (
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/access"
)

func TestAccessDefaultsAndValid(t *testing.T) {
	cfg := mustParse(t, minimal, nil)
	require.Empty(t, cfg.Access)
	require.Empty(t, cfg.AccessRules())
	require.Equal(t, DefaultAuthFailuresPerMinute, cfg.Limits.AuthFailuresPerMinute)
	require.Equal(t, DefaultAuthFailureBurst, cfg.Limits.AuthFailureBurst)

	cfg = mustParse(t, minimal+`access:
  - {cidr: 10.0.0.66, method: reject}
  - cidr: 10.0.0.0/8
    users: [app]
    databases: [appdb]
    method: md5
  - cidr: local
  - {cidr: all, tls: required}
  - {cidr: all, tls: forbidden, method: reject}
limits: {auth_failure_burst: 0, auth_failures_per_minute: 0}
tls: {mode: allow, cert_file: server.crt, key_file: server.key}
`, nil)
	require.Equal(t, []AccessRule{
		{CIDR: "10.0.0.66", Method: AuthReject},
		{CIDR: "10.0.0.0/8", Users: []string{"app"}, Databases: []string{"appdb"}, Method: AuthMD5},
		{CIDR: "local"},
		{CIDR: "all", TLS: AccessTLSRequired},
		{CIDR: "all", TLS: AccessTLSForbidden, Method: AuthReject},
	}, cfg.Access)
	rules := cfg.AccessRules()
	require.Len(t, rules, 5)
	require.Equal(t, access.Decision{Allowed: true, Rule: 3}, rules.Check(access.Client{Addr: &net.TCPAddr{IP: net.ParseIP("11.0.0.1")}, TLS: true, User: "app", Database: "appdb"}))
	require.Equal(t, access.Decision{Rule: 4, Method: "reject"}, rules.Check(access.Client{Addr: &net.TCPAddr{IP: net.ParseIP("11.0.0.1")}, User: "app", Database: "appdb"}))
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1} }
	require.Equal(t, access.Decision{Rule: 0, Method: "reject"}, rules.Check(access.Client{Addr: tcp("10.0.0.66"), User: "app", Database: "appdb"}))
	require.Equal(t, access.Decision{Allowed: true, Rule: 1, Method: "md5"}, rules.Check(access.Client{Addr: tcp("10.9.0.1"), User: "app", Database: "appdb"}))
	require.Equal(t, access.Decision{Rule: 4, Method: "reject"}, rules.Check(access.Client{Addr: tcp("10.9.0.1"), User: "app", Database: "other"}))
	require.Equal(t, access.Decision{Allowed: true, Rule: 2}, rules.Check(access.Client{Addr: &net.UnixAddr{Net: "unix"}, User: "app", Database: "appdb"}))
	require.Equal(t, 0, cfg.Limits.AuthFailureBurst)
}

func TestAccessRulesOnHandBuiltConfigFailClosed(t *testing.T) {
	cfg := &Config{Access: []AccessRule{{CIDR: "10.0.0/33"}, {CIDR: "all"}}}
	d := cfg.AccessRules().Check(access.Client{Addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.1")}, User: "app", Database: "appdb"})
	require.Equal(t, access.Decision{Rule: 0, Method: "reject"}, d, "a rule that does not parse refuses everyone")
}

func TestAccessProblems(t *testing.T) {
	trustUser := "  - name: ops\n    auth_method: trust\n"
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"bad cidr", minimal + "access:\n  - cidr: 10.0.0.0/8\n  - cidr: 10.0.0/33\n", []string{
			`access[1].cidr: invalid CIDR "10.0.0/33": use a form such as "10.0.0.0/8" or "fd00::/8" (line 10)`}},
		{"bad address", minimal + "access:\n  - cidr: db.example\n", []string{`access[0].cidr: invalid address "db.example"`}},
		{"missing cidr", minimal + "access:\n  - users: [app]\n", []string{`access[0].cidr: required: a CIDR such as "10.0.0.0/8"`}},
		{"bad method", minimal + "access:\n  - {cidr: all, method: peer}\n", []string{
			`access[0].method: must be one of scram-sha-256, md5, password, trust, token, cert or reject, got "peer"`}},
		{"unknown user", minimal + "access:\n  - {cidr: all, users: [app, ap]}\n", []string{`access[0].users[1]: unknown user "ap" (not in users[]`}},
		{"unknown database", minimal + "access:\n  - {cidr: all, databases: [appdbb]}\n", []string{`access[0].databases[0]: unknown database "appdbb"`}},
		{"passwordless user with a password method", strings.Replace(minimal, "databases:", trustUser+"databases:", 1) +
			"access:\n  - {cidr: all, users: [ops], method: scram-sha-256}\n  - {cidr: local, users: [ops], method: trust}\n  - {cidr: all, users: [ops], method: reject}\n", []string{
			`access[0].method: user "ops" has no password, so scram-sha-256 can never let it in`}},
		{"bad tls", minimal + "access:\n  - {cidr: all, tls: yes}\n", []string{
			`access[0].tls: must be one of required or forbidden, got "yes"`}},
		{"tls on local", minimal + "access:\n  - {cidr: local, tls: forbidden}\n", []string{
			`access[0].tls: a rule with tls set only matches TCP clients (like pg_hba's hostssl and hostnossl), so with cidr local it matches nobody; leave tls out`}},
		{"tls required without TLS", minimal + "access:\n  - {cidr: all, tls: required}\n", []string{
			`access[0].tls: required matches no client while tls.mode is disable (no client can use TLS); set tls.mode to allow or require`}},
		{"wrong shape", minimal + "access: {cidr: all}\n", []string{"access: expected a list, got a mapping"}},
		{"unknown rule key", minimal + "access:\n  - {cidr: all, user: [app]}\n", []string{`access[0].user: unknown key, did you mean "users"?`}},
		{"negative burst", minimal + "limits: {auth_failure_burst: -1}\n", []string{"limits.auth_failure_burst: must be between 0 (no limit) and 1000000, got -1"}},
		{"zero rate", minimal + "limits: {auth_failures_per_minute: 0}\n", []string{"limits.auth_failures_per_minute: must be between 1 and 1000000, got 0"}},
		{"negative rate while disabled", minimal + "limits: {auth_failures_per_minute: -5, auth_failure_burst: 0}\n", []string{
			"limits.auth_failures_per_minute: must not be negative, got -5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), nil)
			require.Error(t, err)
			got := strings.Split(err.Error(), "\n")
			require.Len(t, got, len(tc.want), "problems:\n%s", err)
			for _, w := range tc.want {
				require.True(t, hasPrefix(got, w), "want a problem starting %q, got:\n%s", w, err)
			}
		})
	}
}
