package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUnknownModeSpellings pins the exact, complete problem list for mode
// values sluice does not know (pool_mode, auth methods, TLS modes): each
// is reported at its key path, quoted as written in the file, and
// settings that depend on it add nothing misleading. The typed modes must
// report them exactly as the strings did.
func TestUnknownModeSpellings(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"pool_mode", user + db + "    pool_mode: Transaction\n",
			[]string{`databases.appdb.pool_mode: must be one of session, transaction or statement, got "Transaction" (line 7)`}},
		{"empty pool_mode", user + db + "    pool_mode: \"\"\n",
			[]string{`databases.appdb.pool_mode: must be one of session, transaction or statement, got "" (line 7)`}},
		{"number pool_mode", user + db + "    pool_mode: 2\n",
			[]string{`databases.appdb.pool_mode: must be one of session, transaction or statement, got "2" (line 7)`}},
		{"mapping pool_mode", user + db + "    pool_mode: {a: 1}\n",
			[]string{`databases.appdb.pool_mode: expected a string, got a mapping (line 7)`}},
		{"null pool_mode keeps the default", user + db + "    pool_mode: ~\n", nil},
		{"auth.method", user + db + "auth: {method: md4}\n",
			[]string{`auth.method: must be one of scram-sha-256, md5, password, trust, token or cert, got "md4" (line 7)`}},
		{"auth.method reject", user + db + "auth: {method: reject}\n",
			[]string{`auth.method: must be one of scram-sha-256, md5, password, trust, token or cert, got "reject" (line 7)`}},
		{"user auth_method without password", "users:\n  - name: app\n    auth_method: kerberos\n" + db,
			[]string{
				`users[0].auth_method: must be one of scram-sha-256, md5, password, trust, token or cert, got "kerberos" (line 3)`,
				`users[0].password: required (auth method kerberos); only users with auth_method trust, token or cert may have none, or set auth.auth_user to look passwords up with auth.auth_query (line 2)`,
			}},
		{"global method without password", "users:\n  - name: app\n" + db + "auth: {method: ldap}\n",
			[]string{
				`auth.method: must be one of scram-sha-256, md5, password, trust, token or cert, got "ldap" (line 6)`,
				`users[0].password: required (auth method ldap); only users with auth_method trust, token or cert may have none, or set auth.auth_user to look passwords up with auth.auth_query (line 2)`,
			}},
		{"empty user auth_method is no override", "users:\n  - name: app\n    password: x\n    auth_method: \"\"\n" + db, nil},
		{"access method", user + db + "access:\n  - {cidr: all, method: pam}\n",
			[]string{`access[0].method: must be one of scram-sha-256, md5, password, trust, token, cert or reject, got "pam" (line 8)`}},
		{"access tls", user + db + "access:\n  - {cidr: all, tls: true}\n",
			[]string{`access[0].tls: must be one of required or forbidden, got "true" (line 8)`}},
		{"tls.mode", user + db + "tls: {mode: verify-full}\n",
			[]string{`tls.mode: must be one of disable, allow or require, got "verify-full" (line 7)`}},
		{"tls.mode unknown with password method", user + db + "auth: {method: password}\ntls: {mode: on}\n",
			[]string{`tls.mode: must be one of disable, allow or require, got "on" (line 8)`}},
		{"tls.min_version", user + db + "tls: {min_version: 1.1}\n",
			[]string{`tls.min_version: must be one of 1.2 or 1.3, got "1.1" (line 7)`}},
		{"server_tls.mode", user + db + "    server_tls: {mode: allow}\n",
			[]string{`databases.appdb.server_tls.mode: must be one of disable, prefer, require, verify-ca or verify-full, got "allow" (line 7)`}},
		{"server_tls.mode case", user + db + "    server_tls: {mode: VERIFY-FULL}\n",
			[]string{`databases.appdb.server_tls.mode: must be one of disable, prefer, require, verify-ca or verify-full, got "VERIFY-FULL" (line 7)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), nil)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			var ps Problems
			require.True(t, errors.As(err, &ps), "%v", err)
			got := make([]string, len(ps))
			for i, p := range ps {
				got[i] = p.String()
			}
			require.Equal(t, tc.want, got)
		})
	}
}
