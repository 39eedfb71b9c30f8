package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/version"
)

// versionLine is what `sluice version` prints: a semantic version, the
// commit and the Go version with the platform.
var versionLine = regexp.MustCompile(`^sluice v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)? \(commit [0-9A-Za-z.-]+, go[0-9][^ ]* [a-z0-9]+/[a-z0-9]+\)\n$`)

// Both spellings print the same line. The test binary got no -X flags,
// so it is a development build: the version is this release's -dev.
func TestVersionCommandAndFlag(t *testing.T) {
	out, err := runCLI(t, "version")
	require.NoError(t, err)
	require.Regexp(t, versionLine, out)
	require.True(t, strings.HasPrefix(out, "sluice "+version.DevVersion+" (commit "), out)
	require.Contains(t, out, runtime.Version())
	flag, err := runCLI(t, "--version")
	require.NoError(t, err)
	require.Equal(t, out, flag)
}

// `make build` sets the version and commit with the linker: the Makefile's
// own rule builds sluice into a temp dir with VERSION and COMMIT given,
// and the binary prints them.
func TestMakeBuildSetsVersionAndCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make and the go command")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on PATH")
	}
	dir := t.TempDir()
	build := exec.Command("make", "-C", filepath.Join("..", ".."), "--no-print-directory", "build",
		"BIN_DIR="+dir, "VERSION=v0.2.0", "COMMIT=0123456789ab")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	want := "sluice v0.2.0 (commit 0123456789ab, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(filepath.Join(dir, "sluice"), args...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, want, string(out), args)
	}
}
