package pgserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// watchdogChildEnv makes the test binary a process that starts a
// cluster, prints where, and waits to be killed.
const watchdogChildEnv = "PGSERVER_WATCHDOG_CHILD_DIR"

func TestWatchdogChild(t *testing.T) {
	dir := os.Getenv(watchdogChildEnv)
	if dir == "" {
		t.Skip("helper process for TestWatchdogStopsTheServerOfADeadProcess")
	}
	c, err := Start(context.Background(), Options{Dir: dir})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("started", c.pid(), c.root)
	select {} // killed by the parent
}

// A process killed without Stop (as `go test -timeout` kills a test
// binary) leaves no server and no directory behind.
func TestWatchdogStopsTheServerOfADeadProcess(t *testing.T) {
	requireBinaries(t)
	parent := parentDir(t)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestWatchdogChild$", "-test.v")
	cmd.Env = append(os.Environ(), watchdogChildEnv+"="+parent)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	var pid int
	var root string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatal(line)
		}
		if _, err := fmt.Sscanf(line, "started %d %s", &pid, &root); err == nil {
			break
		}
	}
	require.NotZero(t, pid, "the child did not report a started cluster")
	require.DirExists(t, root)
	require.DirExists(t, fmt.Sprintf("/proc/%d", pid))

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	// The watchdog needs the postmaster's immediate shutdown; the guard is
	// generous for a loaded machine, and the loop ends as soon as both are gone.
	guard := time.Now().Add(2 * time.Minute)
	for {
		_, procErr := os.Stat(fmt.Sprintf("/proc/%d", pid))
		_, dirErr := os.Stat(root)
		if os.IsNotExist(procErr) && os.IsNotExist(dirErr) {
			return
		}
		if time.Now().After(guard) {
			syscall.Kill(pid, syscall.SIGKILL)
			os.RemoveAll(root)
			t.Fatalf("two minutes after its owner died, postmaster %d (%v) or directory %s (%v) is still there", pid, procErr, root, dirErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
