package demo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/demo"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// fleetChildEnv makes the test binary run as a sluice (`run --config
// FILE`), for the fleet demo's child processes.
const fleetChildEnv = "SLUICE_DEMO_FLEET_CHILD"

// runSluiceChild is `sluice run --config FILE` inside the test binary.
func runSluiceChild() int {
	args := os.Args[1:]
	if len(args) != 3 || args[0] != "run" || args[1] != "--config" {
		fmt.Fprintf(os.Stderr, "demo test child: want run --config FILE, got %q\n", args)
		return 2
	}
	if err := daemon.Run(context.Background(), args[2], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		return 1
	}
	return 0
}

// requireTool skips (or fails under CI=true) without etcd or haproxy.
func requireTool(t *testing.T, pkg string, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err == nil {
			return
		}
	}
	msg := fmt.Sprintf("the fleet demo needs %s (looked for %v); install it: apt-get install --no-install-recommends %s", names[0], names, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// The fleet demo: three sluice processes with auto_promote behind
// HAProxy; the primary killed, then the sluice that promoted. The fleet
// promotes once (epoch 2), no acknowledged write is lost or duplicated,
// the other two sluices keep serving, and no process it started is left.
func TestDemoFleetPromotesOnceAndLeavesNoProcess(t *testing.T) {
	requireTool(t, "etcd-server", "etcd", "/usr/bin/etcd")
	requireTool(t, "haproxy", "haproxy", "/usr/sbin/haproxy")
	t.Setenv(fleetChildEnv, "1") // inherited by the sluice children only
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := &syncbuf.Buffer{}
	err := demo.Run(ctx, demo.Options{Out: out, LogOut: &syncbuf.Buffer{},
		Fleet: &demo.FleetOptions{Sluice: os.Args[0], FailoverOptions: demo.FailoverOptions{
			WriteEvery:   20 * time.Millisecond,
			KillAfter:    time.Second,
			ContinueFor:  time.Second,
			ReportEvery:  250 * time.Millisecond,
			PromoteAfter: time.Second,
			HealthCheck:  200 * time.Millisecond,
		}}})
	t.Logf("demo output:\n%s", out)
	require.NoError(t, err)
	s := out.String()
	require.Regexp(t, `psql "postgresql://[^"]+"`, s)
	require.Contains(t, s, "=== kill -9 the primary's postmaster")
	require.Regexp(t, `=== kill -9 sluice-\d`, s)
	require.Regexp(t, `(?m)^  lost +0$`, s)
	require.Regexp(t, `(?m)^  duplicated +0$`, s)
	require.Regexp(t, `(?m)^  fencing epoch +2 \(`, s)
	require.Regexp(t, `(?m)^  promotions +1 \(`, s)
	require.Regexp(t, `(?m)^  sluice killed +sluice-\d: \d+ connection attempts refused after it, [1-9]\d* writes acknowledged`, s)
	require.Regexp(t, `(?m)^  HAProxy's view of it +DOWN`, s)
	require.Contains(t, s, "No acknowledged write was lost or duplicated")

	// Every process the demo started has exited and been reaped.
	m := regexp.MustCompile(`(?m)^stopped: (.*)$`).FindStringSubmatch(s)
	require.NotNil(t, m, "the demo lists what it stopped")
	pids := regexp.MustCompile(`(\S+) pid (\d+)`).FindAllStringSubmatch(m[1], -1)
	require.Len(t, pids, 5, "etcd, three sluices and haproxy")
	for _, p := range pids {
		pid, _ := strconv.Atoi(p[2])
		err := syscall.Kill(pid, 0)
		require.True(t, errors.Is(err, syscall.ESRCH), "%s (pid %d) is still there: %v", p[1], pid, err)
	}
	require.Contains(t, s, "primary stopped and removed")
	require.Contains(t, s, "standby stopped and removed")
}
