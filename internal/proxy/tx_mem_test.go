package proxy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// TestTxIdleMemory reports what an idle transaction-pooled client costs
// sluice: bench/cmd/idleclients (another process) holds the clients while
// this process, which runs sluice alone, reads its own memory statistics.
func TestTxIdleMemory(t *testing.T) {
	if os.Getenv("SLUICE_PROFILE") == "" {
		t.Skip("set SLUICE_PROFILE=1")
	}
	bin := filepath.Join(t.TempDir(), "idleclients")
	out, err := exec.Command("go", "build", "-o", bin, "../../bench/cmd/idleclients").CombinedOutput()
	require.NoError(t, err, "%s", out)
	user, pw := pgtest.AppUser, pgtest.AppPassword // SCRAM
	if os.Getenv("SLUICE_PROFILE") == "md5" {
		user, pw = pgtest.MD5User, pgtest.MD5Password
	}
	h := startWith(t, txPool(5), "log:\n  level: warn\n")
	const n = 5000
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cmd := exec.Command(bin, "-dsn", h.dsn(user, pw), "-n", fmt.Sprint(n),
		"-pid", fmt.Sprint(os.Getpid()), "-settle", "6s")
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	require.NoError(t, cmd.Start())
	for metricValue(t, h.srv.Metrics().ClientConnections) < n {
		time.Sleep(100 * time.Millisecond)
	}
	// A client idle for a full period of the hop sweep is parked (no
	// goroutine; Linux), or, where it cannot be, moved to a fresh 2 kB
	// goroutine if its stack grew at login.
	for h.srv.HopsPending() > 0 || runtime.GOOS == "linux" && h.srv.ParkedClients() < n {
		time.Sleep(100 * time.Millisecond)
	}
	runtime.ReadMemStats(&ms1)
	pre := ms1
	for range 4 { // each GC halves the stacks of goroutines using under a quarter
		runtime.GC()
	}
	runtime.ReadMemStats(&ms1)
	parked := h.srv.ParkedClients()
	require.NoError(t, cmd.Wait(), stdout.String())
	kb := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n / 1024 }
	t.Logf("per idle client (%d parked): stack %.2f kB, heap in use %.2f kB (%.2f kB before a GC), heap objects %.1f; Sys %.2f kB; idleclients: %s",
		parked, kb(ms1.StackInuse, ms0.StackInuse), kb(ms1.HeapInuse, ms0.HeapInuse), kb(pre.HeapInuse, ms0.HeapInuse),
		(float64(ms1.HeapObjects)-float64(ms0.HeapObjects))/n, kb(ms1.Sys, ms0.Sys), stdout.String())
}
