package main

import (
	"archive/tar"
	"compress/gzip"
	"debug/elf"
	"debug/macho"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// releaseTestEnv turns TestMakeRelease on: it cross-builds three
// binaries, about 4 minutes on this 2-core machine with a cold cache, too
// long for make test.
const releaseTestEnv = "SLUICE_TEST_RELEASE"

// make release writes one archive per platform and SHA256SUMS that
// verifies them; each archive holds a binary for its platform (checked
// in its ELF or Mach-O header), LICENSE, the example config and the man
// pages. Run it with SLUICE_TEST_RELEASE=1 go test -run TestMakeRelease ./cmd/sluice/
func TestMakeRelease(t *testing.T) {
	if os.Getenv(releaseTestEnv) != "1" {
		t.Skipf("set %s=1 to cross-build the release (minutes)", releaseTestEnv)
	}
	for _, tool := range []string{"make", "tar", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on PATH", tool)
		}
	}
	dist, bin := t.TempDir(), t.TempDir()
	out, err := exec.Command("make", "-C", repoRoot, "--no-print-directory", "release",
		"DIST="+dist, "BIN_DIR="+bin, "VERSION=v0.2.0", "COMMIT=0123456789ab").CombinedOutput()
	require.NoError(t, err, "%s", out)

	sums := exec.Command("sha256sum", "-c", "SHA256SUMS")
	sums.Dir = dist
	out, err = sums.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, p := range []struct {
		name string
		arch func(path string) (string, error)
		want string
	}{
		{"linux-amd64", elfMachine, elf.EM_X86_64.String()},
		{"linux-arm64", elfMachine, elf.EM_AARCH64.String()},
		{"darwin-arm64", machoCPU, macho.CpuArm64.String()},
	} {
		name := "sluice-v0.2.0-" + p.name
		require.Contains(t, string(out), name+".tar.gz: OK")
		dir := t.TempDir()
		files := untar(t, filepath.Join(dist, name+".tar.gz"), dir)
		for _, f := range []string{"sluice", "LICENSE", "README.md", "CHANGELOG.md", "sluice.yaml", "man/sluice.1", "man/sluice-run.1"} {
			require.Contains(t, files, name+"/"+f)
		}
		arch, err := p.arch(filepath.Join(dir, name, "sluice"))
		require.NoError(t, err, name)
		require.Equal(t, p.want, arch, name)
		if p.name == runtime.GOOS+"-"+runtime.GOARCH {
			out, err := exec.Command(filepath.Join(dir, name, "sluice"), "version").CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.True(t, strings.HasPrefix(string(out), "sluice v0.2.0 (commit 0123456789ab, "), "%s", out)
		}
	}
}

func elfMachine(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return f.Machine.String(), nil
}

func machoCPU(path string) (string, error) {
	f, err := macho.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return f.Cpu.String(), nil
}

// untar extracts a .tar.gz into dir and lists its regular files.
func untar(t *testing.T, archive, dir string) []string {
	t.Helper()
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var files []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		require.NoError(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		require.False(t, strings.Contains(h.Name, ".."), h.Name)
		files = append(files, h.Name)
		p := filepath.Join(dir, h.Name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode)&0o755)
		require.NoError(t, err)
		_, err = io.Copy(w, tr)
		require.NoError(t, err)
		require.NoError(t, w.Close())
	}
}
