package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The version a release build sets with the Makefile's LDFLAGS is what
// `sluice version` prints (and what sluice_build_info reports: both read
// internal/version). It builds sluice with the Makefile's own flag.
func TestBuildSetsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	makefile, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^LDFLAGS := -X (\S+)=\$\(VERSION\)$`).FindSubmatch(makefile)
	require.NotNil(t, m, "the Makefile's LDFLAGS line")
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command(gobin, "build", "-ldflags", "-X "+string(m[1])+"=9.9.9-test", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "sluice 9.9.9-test", strings.TrimSpace(string(out)))
}
