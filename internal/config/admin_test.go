package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAdminConsoleAndAPIKeys(t *testing.T) {
	cfg := mustParse(t, minimal+"admin:\n  users: [app]\n  api_token: ${TOK}\n  api_read_requires_token: true\n  pprof: true\n",
		map[string]string{"TOK": "0123456789abcdefXYZ"})
	require.Equal(t, []string{"app"}, cfg.Admin.Users)
	require.Equal(t, "0123456789abcdefXYZ", cfg.Admin.APIToken)
	require.True(t, cfg.Admin.ConsoleEnabled())
	require.Equal(t, "admin", cfg.Admin.ConsoleRole("app"))
	require.Equal(t, "", cfg.Admin.ConsoleRole("other"))
	require.True(t, cfg.Admin.Pprof)

	def := mustParse(t, minimal, nil)
	require.False(t, def.Admin.ConsoleEnabled(), "the console is off by default")
	require.False(t, def.Admin.APIReadRequiresToken)
	// Without console users, the names are free (existing configs keep working).
	mustParse(t, "users:\n  - name: app\n    password: x\ndatabases:\n  pgbouncer:\n    hosts: [\"127.0.0.1:5432\"]\n", nil)
}

func TestAdminProblems(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{minimal + "admin:\n  users: [nobody]\n", `admin.users[0]: "nobody" is not in users[]`},
		{minimal + "admin:\n  users: [app]\n  stats_users: [app]\n", `admin.stats_users[0]: "app" is already in admin.users`},
		{minimal + "admin:\n  api_token: short\n", "admin.api_token: too short"},
		{minimal + "admin:\n  api_token: 0123456789abcdefXYZ\n  api_token_file: /x\n", "admin.api_token_file: set either api_token or api_token_file, not both"},
		{minimal + "admin:\n  api_read_requires_token: true\n", "admin.api_read_requires_token: needs admin.api_token"},
		{minimal + "admin:\n  tls_cert_file: /a\n", "admin.tls_cert_file: set admin.tls_cert_file and admin.tls_key_file together"},
		{minimal + "admin:\n  api_token: ${NOPE}\n", "admin.api_token: environment variable NOPE is not set"},
		{"users:\n  - name: app\n    password: x\nadmin:\n  stats_users: [app]\ndatabases:\n  sluice:\n    hosts: [\"127.0.0.1:5432\"]\n",
			`databases.sluice: the name "sluice" is reserved for the admin console`},
	} {
		_, err := Parse([]byte(tc.doc), fakeEnv(nil))
		require.Error(t, err, tc.doc)
		require.Contains(t, err.Error(), tc.want)
	}
}
