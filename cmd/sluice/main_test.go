package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// One PostgreSQL for the package (the healthcheck test probes a real
// sluice in front of it); goleak runs after the tests.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func runCLI(t *testing.T, args ...string) (string, error) {
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func writeConfig(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "sluice.yaml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

const validConfig = `
users:
  - name: app
    password: app_pw
databases:
  appdb:
    hosts: ["127.0.0.1:5432"]
    pool:
      min_size: 2
      max_size: 20
`

func TestCheckConfigAcceptsAValidFile(t *testing.T) {
	out, err := runCLI(t, "check-config", "--config", writeConfig(t, validConfig))
	require.NoError(t, err, out)
	require.Contains(t, out, "ok")
}

func TestCheckConfigNamesEveryProblemByKeyPath(t *testing.T) {
	bad := `
listen:
  adress: 127.0.0.1:6432
users:
  - name: app
    password: app_pw
databases:
  appdb:
    hosts: ["127.0.0.1:5432"]
    pool:
      min_size: 5
      max_size: 2
`
	out, err := runCLI(t, "check-config", "--config", writeConfig(t, bad))
	require.Error(t, err)
	require.Contains(t, out, "listen.adress")
	require.Contains(t, out, "databases.appdb.pool.max_size: must be >= min_size")
}

func TestVersionAndHelp(t *testing.T) {
	out, err := runCLI(t, "version")
	require.NoError(t, err)
	require.Contains(t, out, "sluice")
	out, err = runCLI(t, "--help")
	require.NoError(t, err)
	for _, c := range []string{"run", "check-config", "demo", "version"} {
		require.Contains(t, out, c)
	}
}
