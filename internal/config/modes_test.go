package config

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/internal/access"
)

// TestModeSpellings checks every typed mode against its YAML spelling in
// both directions, and that the exported lists (used in problems and by
// the docs test) are still the spellings in the documented order.
func TestModeSpellings(t *testing.T) {
	require.Equal(t, []string{"session", "transaction", "statement"}, PoolModes)
	require.Equal(t, []string{"scram-sha-256", "md5", "password", "trust", "token", "cert"}, AuthMethods)
	require.Equal(t, []string{"scram-sha-256", "md5", "password", "trust", "token", "cert", "reject"}, AccessMethods)
	require.Equal(t, []string{"disable", "allow", "require"}, TLSModes)
	require.Equal(t, []string{"1.2", "1.3"}, TLSVersions)
	require.Equal(t, []string{"disable", "prefer", "require", "verify-ca", "verify-full"}, ServerTLSModes)
	require.Equal(t, []string{"required", "forbidden"}, AccessTLS)

	for _, tc := range []struct {
		v    interface{ String() string }
		want string
	}{
		{PoolSession, "session"}, {PoolTransaction, "transaction"}, {PoolStatement, "statement"},
		{AuthUnset, ""}, {AuthSCRAM, "scram-sha-256"}, {AuthMD5, "md5"}, {AuthPassword, "password"},
		{AuthTrust, "trust"}, {AuthToken, "token"}, {AuthCert, "cert"}, {AuthReject, "reject"},
		{TLSDisable, "disable"}, {TLSAllow, "allow"}, {TLSRequire, "require"},
		{TLS12, "1.2"}, {TLS13, "1.3"},
		{ServerTLSDisable, "disable"}, {ServerTLSPrefer, "prefer"}, {ServerTLSRequire, "require"},
		{ServerTLSVerifyCA, "verify-ca"}, {ServerTLSVerifyFull, "verify-full"},
		{AccessTLSAny, ""}, {AccessTLSRequired, "required"}, {AccessTLSForbidden, "forbidden"},
	} {
		require.Equal(t, tc.want, tc.v.String())
	}
	require.Equal(t, "unknown(255)", PoolMode(unknownMode).String())

	// The access package matches on its own spellings: compileAccess maps with String.
	require.Equal(t, access.MethodReject, AuthReject.String())
	require.Equal(t, access.TLSRequired, AccessTLSRequired.String())
	require.Equal(t, access.TLSForbidden, AccessTLSForbidden.String())
}

// TestModesOutsideParse: plain yaml.v3 and encoding/json read and write
// the spellings (TextMarshaler), and logs show them, not numbers.
func TestModesOutsideParse(t *testing.T) {
	var db Database
	require.NoError(t, yaml.Unmarshal([]byte("pool_mode: statement\nserver_tls: {mode: verify-ca}\n"), &db))
	require.Equal(t, PoolStatement, db.PoolMode)
	require.Equal(t, ServerTLSVerifyCA, db.ServerTLS.Mode)
	require.ErrorContains(t, yaml.Unmarshal([]byte("pool_mode: Session\n"), &db), `unknown pool mode "Session" (want session, transaction or statement)`)
	require.Equal(t, PoolStatement, db.PoolMode, "a failed decode keeps the value")

	out, err := yaml.Marshal(TLS{Mode: TLSRequire, MinVersion: TLS13})
	require.NoError(t, err)
	require.Contains(t, string(out), "mode: require\n")
	require.Contains(t, string(out), "min_version: \"1.3\"\n")

	js, err := json.Marshal(AccessRule{CIDR: "all", Method: AuthMD5, TLS: AccessTLSForbidden})
	require.NoError(t, err)
	require.JSONEq(t, `{"CIDR":"all","Users":null,"Databases":null,"Method":"md5","TLS":"forbidden"}`, string(js))
	var r AccessRule
	require.NoError(t, json.Unmarshal(js, &r))
	require.Equal(t, AccessRule{CIDR: "all", Method: AuthMD5, TLS: AccessTLSForbidden}, r)
	_, err = json.Marshal(PoolMode(unknownMode))
	require.Error(t, err, "a value with no spelling is not written as one")

	var text, jsonLog bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "pool_mode", PoolTransaction, "method", AuthSCRAM)
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("x", "pool_mode", PoolTransaction, "method", AuthSCRAM)
	require.Contains(t, text.String(), "pool_mode=transaction method=scram-sha-256")
	require.Contains(t, jsonLog.String(), `"pool_mode":"transaction","method":"scram-sha-256"`)
}

// TestAccessMethodIsTheDecidingRules: the typed override the proxy uses
// is the one of the rule access.Check picked.
func TestAccessMethodIsTheDecidingRules(t *testing.T) {
	cfg := &Config{Access: []AccessRule{
		{CIDR: "10.0.0.66", Method: AuthReject},
		{CIDR: "10.0.0.0/8", Method: AuthMD5},
		{CIDR: "all"},
		{CIDR: "not a cidr", Method: AuthTrust},
	}}
	rules := cfg.AccessRules()
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1} }
	check := func(d access.Decision) AuthMethod { return cfg.AccessMethod(d) }
	require.Equal(t, AuthReject, check(rules.Check(access.Client{Addr: tcp("10.0.0.66")})))
	require.Equal(t, AuthMD5, check(rules.Check(access.Client{Addr: tcp("10.1.0.1")})))
	require.Equal(t, AuthUnset, check(rules.Check(access.Client{Addr: tcp("11.0.0.1")})))
	require.Equal(t, AuthUnset, check(access.Decision{Allowed: true, Rule: -1}), "no rules: the user's own method")
	require.Equal(t, AuthReject, check(access.Decision{Rule: 3, Method: access.MethodReject}), "a rule that does not compile refuses")
}
