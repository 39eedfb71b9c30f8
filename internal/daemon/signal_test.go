package daemon_test

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Real signals to our own process: Wait has them registered, so SIGHUP
// reloads and SIGTERM shuts down instead of killing the test binary.
func TestSignalsReloadAndStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeConfig(t, path, "info", freePort(t))
	d, logs := startDaemonAt(t, path)
	// Registering here too keeps a signal sent before Wait registers from
	// taking its default action (killing the test binary).
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP, syscall.SIGTERM)
	defer signal.Stop(guard)
	done := make(chan struct{})
	go func() { defer close(done); d.Wait(context.Background()) }()

	// Wait may not have registered yet: retry SIGHUP until it reloads.
	require.Eventually(t, func() bool {
		syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
		time.Sleep(20 * time.Millisecond)
		return strings.Contains(logs.String(), "configuration reloaded")
	}, 10*time.Second, 50*time.Millisecond)

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	<-done
	require.Contains(t, logs.String(), `"signal":"terminated"`)
	require.Contains(t, logs.String(), `"msg":"stopped"`)
}
