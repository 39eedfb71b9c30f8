package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenUsers(t *testing.T) {
	tokenUser := "  - name: svc\n    auth_method: token\n    server_password: svc_pw\n"
	doc := strings.Replace(minimal, "databases:", tokenUser+"databases:", 1)

	cfg := mustParse(t, doc+"token:\n  public_key_file: /etc/sluice/token.pub\n", nil)
	require.Equal(t, Token{PublicKeyFile: "/etc/sluice/token.pub"}, cfg.Token)
	u := cfg.User("svc")
	require.Equal(t, AuthToken, u.EffectiveAuthMethod(cfg.Auth.Method))
	require.Empty(t, u.Password, "a token user needs no password")
	require.Equal(t, "svc_pw", u.ServerPassword)
	require.Equal(t, Token{}, mustParse(t, minimal, nil).Token, "defaults are empty")

	// An access rule may switch a passwordless token user to token, not to
	// a password method.
	ok := doc + "token: {public_key_file: k.pub}\naccess:\n  - {cidr: all, users: [svc], method: token}\n"
	mustParse(t, ok, nil)

	for _, tc := range []struct{ name, doc, want string }{
		{"user without key", doc, "token.public_key_file: required because users[1].auth_method is token"},
		{"global without key", strings.Replace(minimal, "users:", "auth:\n  method: token\nusers:", 1),
			"token.public_key_file: required because auth.method is token"},
		{"access without key", minimal + "access:\n  - {cidr: all, method: token}\n",
			"token.public_key_file: required because access[0].method is token"},
		{"password method for token user", doc + "token: {public_key_file: k.pub}\naccess:\n  - {cidr: all, users: [svc], method: md5}\n",
			`access[0].method: user "svc" has no password, so md5 can never let it in; use trust, token or cert`},
		{"unknown token key", minimal + "token: {public_key: k.pub}\n", `token.public_key: unknown key (known keys here: private_key_file, public_key_file)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), nil)
			require.Error(t, err)
			got := strings.Split(err.Error(), "\n")
			require.Len(t, got, 1, "problems:\n%s", err)
			require.True(t, strings.HasPrefix(got[0], tc.want), "want %q, got:\n%s", tc.want, err)
		})
	}
}
