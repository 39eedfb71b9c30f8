package main

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfileFromEnv: SLUICE_CPUPROFILE makes `sluice run` write a CPU
// profile (gzip-compressed protobuf, as pprof reads); unset, nothing is
// written.
func TestCPUProfileFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	t.Setenv("SLUICE_CPUPROFILE", path)
	stop, err := startCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	stop()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("not a profile: %v", err)
	}
	if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
		t.Fatalf("not a profile: %d bytes, %v", len(b), err)
	}

	t.Setenv("SLUICE_CPUPROFILE", filepath.Join(t.TempDir(), "missing-dir", "cpu.pprof"))
	if _, err := startCPUProfile(); err == nil {
		t.Fatal("an unwritable path was accepted")
	}

	t.Setenv("SLUICE_CPUPROFILE", "")
	stop, err = startCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	stop()
}
