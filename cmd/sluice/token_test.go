package main

import (
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
	cfg := writeConfig(t, strings.Replace(validConfig, "databases:",
		"token:\n  public_key_file: "+pub+"\n  private_key_file: "+priv+"\ndatabases:", 1))

	// From the config's private_key_file.
	out, err = runCLI(t, "token", "--config", cfg, "--user", "app", "--database", "appdb", "--ttl", "15m")
	require.NoError(t, err, out)
	tok := strings.TrimSpace(out)
	require.NoError(t, token.Verify(pk, tok, "app", "appdb", time.Now()))
	require.NoError(t, token.Verify(pk, tok, "app", "appdb", time.Now().Add(14*time.Minute)))
	require.ErrorIs(t, token.Verify(pk, tok, "app", "appdb", time.Now().Add(16*time.Minute)), token.ErrExpired)
	require.ErrorIs(t, token.Verify(pk, tok, "app", "otherdb", time.Now()), token.ErrWrongDatabase)

	// --key needs no config file at all.
	out, err = runCLI(t, "token", "--config", filepath.Join(dir, "missing.yaml"), "--key", priv, "--user", "app", "--database", "appdb")
	require.NoError(t, err, out)
	require.NoError(t, token.Verify(pk, strings.TrimSpace(out), "app", "appdb", time.Now()))

	for name, args := range map[string][]string{
		"no user":        {"token", "--key", priv, "--database", "appdb"},
		"no key in file": {"token", "--config", writeConfig(t, validConfig), "--user", "app", "--database", "appdb"},
		"public as key":  {"token", "--key", pub, "--user", "app", "--database", "appdb"},
		"zero ttl":       {"token", "--key", priv, "--user", "app", "--database", "appdb", "--ttl", "0s"},
	} {
		out, err := runCLI(t, args...)
		require.Error(t, err, "%s: %s", name, out)
		require.NotContains(t, out, token.Prefix, name)
	}
}
