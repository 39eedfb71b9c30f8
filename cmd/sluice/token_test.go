package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/token"
)

func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "token.key"), filepath.Join(dir, "token.pub")
	out, err := runCLI(t, "token", "keygen", "--private", priv, "--public", pub)
	require.NoError(t, err, out)
	require.Contains(t, out, priv)
	_, err = runCLI(t, "token", "keygen", "--private", priv, "--public", pub)
	require.Error(t, err, "keygen must not overwrite keys")

	pk, err := token.LoadPublicKey(pub)
	require.NoError(t, err)
	cfg := writeConfig(t, tokenConfig(priv, pub))

	// From the config's private_key_file.
	out, err = runCLI(t, "token", "--config", cfg, "--user", "app", "--database", "appdb", "--ttl", "15m")
	require.NoError(t, err, out)
	tok := strings.TrimSpace(out)
	require.NoError(t, token.Verify(pk, tok, "app", "appdb", time.Now()))
	require.NoError(t, token.Verify(pk, tok, "app", "appdb", time.Now().Add(14*time.Minute)))
	require.ErrorIs(t, token.Verify(pk, tok, "app", "appdb", time.Now().Add(16*time.Minute)), token.ErrExpired)
	require.ErrorIs(t, token.Verify(pk, tok, "app", "otherdb", time.Now()), token.ErrWrongDatabase)

	// --key needs no config file at all; then nothing is checked, and the
	// command says so on stderr (stdout stays just the token).
	stdout, stderr, err := runCLISplit(t, "token", "--key", priv, "--user", "app", "--database", "appdb")
	require.NoError(t, err, stderr)
	require.NoError(t, token.Verify(pk, strings.TrimSpace(stdout), "app", "appdb", time.Now()))
	require.Contains(t, stderr, "not checked against a config")

	for name, args := range map[string][]string{
		"no user":        {"token", "--key", priv, "--database", "appdb"},
		"no key in file": {"token", "--config", writeConfig(t, strings.Replace(tokenConfig(priv, pub), "  private_key_file: "+priv+"\n", "", 1)), "--user", "app", "--database", "appdb"},
		"public as key":  {"token", "--key", pub, "--user", "app", "--database", "appdb"},
		"zero ttl":       {"token", "--key", priv, "--user", "app", "--database", "appdb", "--ttl", "0s"},
	} {
		out, err := runCLI(t, args...)
		require.Error(t, err, "%s: %s", name, out)
		require.NotContains(t, out, token.Prefix, name)
	}
}

// tokenConfig is validConfig with a token key pair and user app logging in
// with tokens.
func tokenConfig(priv, pub string) string {
	text := strings.Replace(validConfig, "databases:",
		"token:\n  public_key_file: "+pub+"\n  private_key_file: "+priv+"\ndatabases:", 1)
	return strings.Replace(text, "password: app_pw\n", "password: app_pw\n    auth_method: token\n", 1)
}

// runCLISplit is runCLI with stdout and stderr kept apart.
func runCLISplit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	cmd := newRoot()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// TestTokenCommandChecksTheConfig: with a config, `sluice token` refuses
// to sign a token sluice would never accept (a user or database the
// config does not have, or a user that does not log in with tokens); an
// access rule with method token for the user makes its token acceptable.
func TestTokenCommandChecksTheConfig(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "token.key"), filepath.Join(dir, "token.pub")
	out, err := runCLI(t, "token", "keygen", "--private", priv, "--public", pub)
	require.NoError(t, err, out)
	base := tokenConfig(priv, pub)
	scramUser := strings.Replace(base, "    auth_method: token\n", "", 1)
	viaRule := scramUser + "access:\n  - cidr: all\n    users: [app]\n    databases: [appdb]\n    method: token\n"
	for _, c := range []struct {
		name, config, user, database, want string
	}{
		{"unknown user", base, "nobody", "appdb", `user "nobody" is not in users[]`},
		{"unknown database", base, "app", "nodb", `database "nodb" is not in databases`},
		{"user without token method", scramUser, "app", "appdb", `user "app" logs in with scram-sha-256, not token`},
		{"access rule for another database", viaRule, "app", "otherdb", `database "otherdb" is not in databases`},
		{"token method", base, "app", "appdb", ""},
		{"access rule sets token", viaRule, "app", "appdb", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeConfig(t, c.config)
			for _, args := range [][]string{
				{"token", "--config", cfg, "--user", c.user, "--database", c.database},
				{"token", "--config", cfg, "--key", priv, "--user", c.user, "--database", c.database},
			} {
				stdout, stderr, err := runCLISplit(t, args...)
				if c.want == "" {
					require.NoError(t, err, stderr)
					require.True(t, strings.HasPrefix(stdout, token.Prefix), stdout)
					require.NotContains(t, stderr, "not checked")
					continue
				}
				require.Error(t, err)
				require.Contains(t, err.Error(), c.want)
				require.NotContains(t, stdout, token.Prefix)
			}
		})
	}
}
