package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAllowPlaintextPassword(t *testing.T) {
	require.False(t, mustParse(t, user+db, nil).Auth.AllowPlaintextPassword, "off by default")
	pw := "auth: {method: password}\n"
	require.True(t, mustParse(t, user+db+"auth: {method: password, allow_plaintext_password: true}\n", nil).Auth.AllowPlaintextPassword)

	// Method password is fine wherever some client could use it: over
	// TLS, on the Unix socket, or in clear when explicitly allowed.
	for name, doc := range map[string]string{
		"tls allow":   user + db + pw + "tls: {mode: allow, cert_file: c.pem, key_file: k.pem}\n",
		"socket":      user + db + pw + "listen: {socket_dir: /tmp}\n",
		"allowed":     user + db + "auth: {method: password, allow_plaintext_password: true}\n",
		"other":       user + db,
		"socket rule": user + db + "listen: {socket_dir: /tmp}\naccess:\n  - {cidr: local, method: password}\n",
	} {
		_, err := Parse([]byte(doc), nil)
		require.NoError(t, err, name)
	}

	for _, tc := range []struct{ name, doc, where string }{
		{"global", user + db + pw, "auth.method"},
		{"user", strings.Replace(user, "password: secret", "password: secret\n    auth_method: password", 1) + db, "users[0].auth_method"},
		{"rule", user + db + "access:\n  - {cidr: all, method: password}\n", "access[0].method"},
	} {
		_, err := Parse([]byte(tc.doc), nil)
		require.Error(t, err, tc.name)
		require.Equal(t, 1, strings.Count(err.Error(), "\n")+1, "%s: one problem: %s", tc.name, err)
		require.Contains(t, err.Error(), "tls.mode: must be allow or require because "+tc.where+" is password", tc.name)
		require.Contains(t, err.Error(), "auth.allow_plaintext_password: true", tc.name)
	}

	_, err := Parse([]byte(user+db+"auth: {allow_plaintext_passwords: true}\n"), nil)
	require.ErrorContains(t, err, `auth.allow_plaintext_passwords: unknown key, did you mean "allow_plaintext_password"?`)
}
