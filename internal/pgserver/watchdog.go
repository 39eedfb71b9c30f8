package pgserver

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// A watchdog stops a cluster whose owner died without Stop: a test binary
// killed by `go test -timeout`, an interrupted `make demo`, a benchmark
// run cut short. Without it the daemonised postmaster would run on, with
// its directory, until the machine reboots, and a loaded 2-core machine
// collects dozens of them over a day of development.
//
// The watchdog is a small shell process of ours, in a process group of
// its own (so that a terminal's Ctrl-C, which signals the foreground
// group, does not kill it before it has cleaned up). Its standard input is
// the read end of a pipe whose write end only this process holds (Go
// opens pipes close-on-exec, so no other child inherits it) and never
// writes to. When this process exits, however it exits, the kernel closes
// the write end and the watchdog's read returns end of file: it then sends
// the postmaster SIGQUIT (immediate shutdown; signalling works as root
// and as the owner alike, where pg_ctl refuses root), waits for it to go,
// and removes the directory. Stop does the same work properly first and
// then closes the pipe itself, so the watchdog wakes to find nothing left
// and exits; Stop waits for it. No goroutine is involved.
type watchdog struct {
	cmd  *exec.Cmd
	pipe *os.File // write end; closing it releases the watchdog
}

// watchdogScript is run by sh with $1 = data directory, $2 = the
// cluster's root directory (removed at the end). It checks the pid is a
// postgres process before signalling it, in case postmaster.pid is stale
// and the number was reused.
const watchdogScript = `cat >/dev/null
pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null)
case "$pid" in ''|*[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null; then
	kill -QUIT "$pid" 2>/dev/null
	i=0
	while [ -d "/proc/$pid" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
	kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$2"
`

// startWatchdog arms a watchdog for c's directories.
func startWatchdog(dataDir, root string) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pgserver: watchdog: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "sluice-pg-watchdog", dataDir, root)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close() // the child has its copy
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("pgserver: watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, pipe: w}, nil
}

// release lets the watchdog go (after Stop did its work) and reaps it.
func (d *watchdog) release() {
	if d == nil {
		return
	}
	d.pipe.Close()
	_ = d.cmd.Wait()
}
