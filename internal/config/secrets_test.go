package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireOneProblem parses doc and wants exactly one problem starting with want.
func requireOneProblem(t *testing.T, doc string, readFile func(string) ([]byte, error), want string) {
	t.Helper()
	_, err := ParseWith([]byte(doc), nil, readFile)
	require.Error(t, err)
	got := strings.Split(err.Error(), "\n")
	require.Len(t, got, 1, "problems:\n%s", err)
	require.True(t, strings.HasPrefix(got[0], want), "want %q, got:\n%s", want, err)
}

func TestPasswordFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	client := write("client", "s3cret with space \n")
	server := write("server", "srv\r\n")
	twoNewlines := write("two", "pw\n\n")
	empty := write("empty", "\n")
	big := write("big", strings.Repeat("x", maxSecretFile+1))

	doc := func(user string) string {
		return "users:\n" + user + "databases:\n  appdb:\n    hosts: [\"127.0.0.1:5432\"]\n"
	}
	path := filepath.Join(dir, "sluice.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc(
		"  - {name: app, password_file: "+client+", server_password_file: "+server+"}\n"+
			"  - {name: two, password_file: "+twoNewlines+"}\n")), 0o600))
	cfg, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, "s3cret with space ", cfg.User("app").Password, "one newline dropped, spaces kept")
	require.Equal(t, "srv", cfg.User("app").ServerPassword, `"\r\n" counts as one newline`)
	require.Equal(t, "pw\n", cfg.User("two").Password, "only one newline is dropped")
	require.Equal(t, "pw\n", cfg.User("two").ServerPassword, "a plaintext password from a file is the server password too")

	// Changing the file and loading again (what SIGHUP does) picks it up.
	write("client", "rotated")
	cfg, err = Load(path)
	require.NoError(t, err)
	require.Equal(t, "rotated", cfg.User("app").Password)

	for _, tc := range []struct{ name, user, want string }{
		{"both", "  - {name: app, password: x, password_file: " + client + "}\n",
			"users[0].password_file: set either password or password_file, not both"},
		{"both server", "  - {name: app, password: x, server_password: y, server_password_file: " + server + "}\n",
			"users[0].server_password_file: set either server_password or server_password_file, not both"},
		{"missing", "  - {name: app, password_file: " + filepath.Join(dir, "nope") + "}\n",
			"users[0].password_file: cannot read the password file: open " + filepath.Join(dir, "nope") + ": no such file"},
		{"empty", "  - {name: app, password_file: " + empty + "}\n", "users[0].password_file: the password file " + empty + " is empty"},
		{"too big", "  - {name: app, password_file: " + big + "}\n", "users[0].password_file: cannot read the password file: " + big + ": larger than 65536 bytes"},
		{"directory", "  - {name: app, password_file: " + dir + "}\n", "users[0].password_file: cannot read the password file: " + dir + ": not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireOneProblem(t, doc(tc.user), ReadSecretFile, tc.want)
		})
	}

	// Parse reads no files at all.
	requireOneProblem(t, doc("  - {name: app, password_file: "+client+"}\n"), nil,
		"users[0].password_file: cannot read the password file: "+client+": secret files are not read here")
}

func TestSecretFileErrorsNeverShowContents(t *testing.T) {
	// A file holding a SCRAM-looking but broken verifier is reported
	// without echoing it.
	read := func(string) ([]byte, error) { return []byte("SCRAM-SHA-256$broken-secret-content\n"), nil }
	_, err := ParseWith([]byte("users:\n  - {name: app, password_file: /x}\ndatabases: {appdb: {hosts: [\"h:1\"]}}\n"), nil, read)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "broken-secret-content")
}

func TestAuthQueryConfig(t *testing.T) {
	lookup := "auth:\n  auth_user: app\n  auth_query_cache_ttl: 5s\n"
	doc := minimal + lookup + "users_extra: x\n"
	doc = strings.Replace(doc, "users_extra: x\n", "", 1)
	// A second user without a password is fine once auth_user is set.
	withBare := strings.Replace(minimal, "databases:", "  - name: bare\ndatabases:", 1)
	cfg := mustParse(t, withBare+lookup, nil)
	require.Equal(t, "app", cfg.Auth.AuthUser)
	require.Equal(t, DefaultAuthQuery, cfg.Auth.AuthQuery)
	require.Equal(t, 5*time.Second, cfg.Auth.AuthQueryCacheTTL.D())
	require.Empty(t, cfg.User("bare").Password)
	mustParse(t, withBare+lookup+"access:\n  - {cidr: all, users: [bare], method: md5}\n", nil)

	for _, tc := range []struct{ name, doc, want string }{
		{"bare user without auth_user", withBare, `users[1].password: required (auth method scram-sha-256); only users with auth_method trust, token or cert may have none, or set auth.auth_user`},
		{"unknown auth user", minimal + "auth: {auth_user: nobody}\n", `auth.auth_user: unknown user "nobody"`},
		{"query without $1", minimal + "auth: {auth_user: app, auth_query: SELECT 1}\n", "auth.auth_query: must use $1 for the user name"},
		{"empty query", minimal + "auth: {auth_query: \"\"}\n", "auth.auth_query: must not be empty"},
		{"negative ttl", minimal + "auth: {auth_query_cache_ttl: -1s}\n", "auth.auth_query_cache_ttl: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) { requireOneProblem(t, tc.doc, nil, tc.want) })
	}
}

func TestCertMethodConfig(t *testing.T) {
	certUser := "  - name: svc\n    auth_method: cert\n    server_password: svc_pw\n"
	doc := strings.Replace(minimal, "databases:", certUser+"databases:", 1)
	tlsOn := "tls: {mode: require, cert_file: s.crt, key_file: s.key, client_ca_file: ca.pem}\n"
	cfg := mustParse(t, doc+tlsOn, nil)
	require.Empty(t, cfg.User("svc").Password, "a cert user needs no password")
	mustParse(t, doc+tlsOn+"access:\n  - {cidr: all, users: [svc], method: cert}\n", nil)

	for _, tc := range []struct{ name, doc, want string }{
		{"no tls", doc + "tls: {client_ca_file: ca.pem}\n", "tls.mode: must be allow or require because users[1].auth_method is cert"},
		{"no client ca", doc + "tls: {mode: allow, cert_file: s.crt, key_file: s.key}\n", "tls.client_ca_file: required because users[1].auth_method is cert"},
		{"global", strings.Replace(minimal, "users:", "auth: {method: cert}\nusers:", 1) + "tls: {mode: allow, cert_file: s.crt, key_file: s.key}\n",
			"tls.client_ca_file: required because auth.method is cert"},
		{"access rule", minimal + "tls: {mode: allow, cert_file: s.crt, key_file: s.key}\naccess:\n  - {cidr: all, method: cert}\n",
			"tls.client_ca_file: required because access[0].method is cert"},
	} {
		t.Run(tc.name, func(t *testing.T) { requireOneProblem(t, tc.doc, nil, tc.want) })
	}
}
