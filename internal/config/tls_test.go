package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTLSDefaultsAndValid(t *testing.T) {
	cfg := mustParse(t, user+db, nil)
	require.Equal(t, TLS{Mode: DefaultTLSMode, MinVersion: DefaultTLSMinVersion}, cfg.TLS)
	require.Equal(t, ServerTLS{Mode: DefaultServerTLSMode}, cfg.Databases["appdb"].ServerTLS)

	cfg = mustParse(t, user+db+"    server_tls: {mode: verify-ca, ca_file: ca.pem}\n"+
		"tls: {mode: allow, cert_file: c.pem, key_file: k.pem, min_version: \"1.3\"}\n", nil)
	require.Equal(t, TLS{Mode: TLSAllow, CertFile: "c.pem", KeyFile: "k.pem", MinVersion: TLS13}, cfg.TLS)
	require.Equal(t, ServerTLS{Mode: ServerTLSVerifyCA, CAFile: "ca.pem"}, cfg.Databases["appdb"].ServerTLS)

	// Unix hosts may keep prefer (plain, as libpq) or disable.
	unix := user + "databases:\n  appdb:\n    hosts: [\"/run/pg:5432\"]\n"
	require.Equal(t, ServerTLSPrefer, mustParse(t, unix, nil).Databases["appdb"].ServerTLS.Mode)
	require.Equal(t, ServerTLSDisable, mustParse(t, unix+"    server_tls: {mode: disable}\n", nil).Databases["appdb"].ServerTLS.Mode)
}

func TestTLSProblems(t *testing.T) {
	unix := user + "databases:\n  appdb:\n    hosts: [\"127.0.0.1:5432\", \"/run/pg:5432\"]\n    failover: {user: app}\n"
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"bad mode", user + db + "tls: {mode: prefer}\n", []string{`tls.mode: must be one of disable, allow or require, got "prefer" (line 7)`}},
		{"bad version", user + db + "tls: {min_version: \"1.1\"}\n", []string{`tls.min_version: must be one of 1.2 or 1.3, got "1.1"`}},
		{"float version", user + db + "tls: {min_version: 1.2}\n", nil}, // YAML 1.2 as a string is fine
		{"require without files", user + db + "tls: {mode: require}\n", []string{
			"tls.cert_file: required when tls.mode is require", "tls.key_file: required when tls.mode is require"}},
		{"allow without key", user + db + "tls: {mode: allow, cert_file: c.pem}\n", []string{"tls.key_file: required when tls.mode is allow"}},
		{"unknown tls key", user + db + "tls: {cert_fil: x}\n", []string{`tls.cert_fil: unknown key, did you mean "cert_file"?`}},
		{"bad server mode", user + db + "    server_tls: {mode: allow}\n", []string{
			`databases.appdb.server_tls.mode: must be one of disable, prefer, require, verify-ca or verify-full, got "allow"`}},
		{"verify without ca", user + db + "    server_tls: {mode: verify-full}\n", []string{
			"databases.appdb.server_tls.ca_file: required when server_tls.mode is verify-full"}},
		{"cert without key", user + db + "    server_tls: {cert_file: c.pem}\n", []string{
			"databases.appdb.server_tls.key_file: required when server_tls.cert_file is set"}},
		{"key without cert", user + db + "    server_tls: {key_file: k.pem}\n", []string{
			"databases.appdb.server_tls.cert_file: required when server_tls.key_file is set"}},
		{"require over unix", unix + "    server_tls: {mode: require}\n", []string{
			`databases.appdb.server_tls.mode: require needs TLS, which is never used over a Unix socket (hosts[1] is "/run/pg:5432")`}},
		{"verify-ca over unix", unix + "    server_tls: {mode: verify-ca, ca_file: x}\n", []string{
			`databases.appdb.server_tls.mode: verify-ca needs TLS`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), nil)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			got := strings.Split(err.Error(), "\n")
			require.Len(t, got, len(tc.want), "problems:\n%s", err)
			for _, w := range tc.want {
				require.True(t, hasPrefix(got, w), "want a problem starting %q, got:\n%s", w, err)
			}
		})
	}
}
