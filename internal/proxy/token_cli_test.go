package proxy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/token"
)

// TestTokenFromCLILogsIn runs the real sluice binary's `token keygen` and
// `token` commands (the cobra code in cmd/sluice, which a test here cannot
// import) against the very config file sluice runs with, and logs in
// through sluice with what `sluice token` printed, as a user would with
// PGPASSWORD=$(sluice token ...).
func TestTokenFromCLILogsIn(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sluice").CombinedOutput()
	require.NoError(t, err, "%s", out)
	priv, pub := filepath.Join(dir, "token.key"), filepath.Join(dir, "token.pub")
	out, err = exec.Command(bin, "token", "keygen", "--private", priv, "--public", pub).CombinedOutput()
	require.NoError(t, err, "%s", out)

	sock := t.TempDir()
	text := tokenConfigText(t, sock, "  public_key_file: "+pub+"\n  private_key_file: "+priv+"\n")
	cfgFile := filepath.Join(dir, "sluice.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(text), 0o600))
	h := startConfig(t, sock, text)

	issue := func(database string) string {
		t.Helper()
		src := []string{"--config", cfgFile}
		if database != pgtest.AppDB { // the config would refuse it: sign with the bare key
			src = []string{"--key", priv}
		}
		cmd := exec.Command(bin, append(append([]string{"token"}, src...), "--user", pgtest.AppUser, "--database", database, "--ttl", "5m")...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, stderr.String())
		tok := strings.TrimSpace(string(out))
		require.True(t, strings.HasPrefix(tok, token.Prefix), "sluice token printed %q", out)
		return tok
	}
	tcp := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-d", pgtest.AppDB}

	tok := issue(pgtest.AppDB)
	got, err := psql(t, []string{"PGPASSWORD=" + tok}, append(tcp, "-c", "SELECT current_user")...)
	require.NoError(t, err, got)
	require.Equal(t, pgtest.AppUser, strings.TrimSpace(got))

	// A token the command made for another database is refused like a
	// wrong password.
	got, err = psql(t, []string{"PGPASSWORD=" + issue("otherdb")}, append(tcp, "-c", "SELECT 1")...)
	require.Error(t, err, got)
	require.Contains(t, got, `password authentication failed for user "`+pgtest.AppUser+`"`)
	require.NotContains(t, h.logs.String(), tok, "the token was logged")
}
