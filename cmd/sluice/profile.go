package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile of `sluice run` to the file named
// by SLUICE_CPUPROFILE, from start until the command returns (a clean
// stop: SIGTERM or SIGINT). It exists to find where a pooled query's time
// goes under a real load (pgbench through the real binary); unset, it
// costs nothing. The returned stop function must be called once.
func startCPUProfile() (stop func(), err error) {
	path := os.Getenv("SLUICE_CPUPROFILE")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("SLUICE_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("SLUICE_CPUPROFILE: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
