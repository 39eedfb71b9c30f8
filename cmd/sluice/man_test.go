package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// `sluice man` writes sluice.1, which names every command, and a page per
// command with its flags.
func TestManWritesAPageListingEveryCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man") // created by the command
	out, err := runCLI(t, "man", "--dir", dir)
	require.NoError(t, err, out)
	page, err := os.ReadFile(filepath.Join(dir, "sluice.1"))
	require.NoError(t, err)
	text := string(page)
	require.Contains(t, text, `.TH "SLUICE" "1"`)
	require.Contains(t, text, "sluice - PostgreSQL proxy and connection pooler")
	require.Contains(t, text, `\fB--version\fP`)
	for _, c := range []string{"run", "check-config", "version", "demo", "token", "healthcheck", "man", "upgrade"} {
		require.Contains(t, text, `\fBsluice-`+c+`(1)\fP`, "sluice.1 refers to %s", c)
		sub, err := os.ReadFile(filepath.Join(dir, "sluice-"+c+".1"))
		require.NoError(t, err, c)
		require.Contains(t, string(sub), `.TH "SLUICE-`+strings.ToUpper(c)+`" "1"`)
	}
	run, err := os.ReadFile(filepath.Join(dir, "sluice-run.1"))
	require.NoError(t, err)
	require.Contains(t, string(run), `\fB--config\fP`)
	require.Contains(t, string(run), "SIGHUP")
}

func TestManNeedsADirectory(t *testing.T) {
	out, err := runCLI(t, "man")
	require.Error(t, err)
	require.Contains(t, out, `required flag(s) "dir" not set`)
}
