package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPortableBuilds keeps sluice building for macOS and FreeBSD: the
// whole module, tests included, type-checks and passes vet there (the
// raw-syscall socket is Linux-only, internal/wire/socket_raw.go), and the
// portable socket that those systems use passes internal/wire's tests on
// this machine too (the sluice_portable tag forces it on Linux). It needs
// the go command. The first run compiles the standard library for each
// target (about a minute on two cores); after that the build cache makes
// it a few seconds.
func TestPortableBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(gobin, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v go %v: %v\n%s", env, args, err, out)
		}
	}
	for _, target := range [][]string{{"darwin", "amd64"}, {"freebsd", "amd64"}} {
		t.Run(target[0]+"_"+target[1], func(t *testing.T) {
			run(t, []string{"GOOS=" + target[0], "GOARCH=" + target[1], "CGO_ENABLED=0"}, "vet", "./...")
		})
	}
	t.Run("portable_socket_on_this_machine", func(t *testing.T) {
		run(t, nil, "test", "-count=1", "-tags", "sluice_portable", "./internal/wire/")
	})
}
