package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Stop shuts the server down (pg_ctl stop -m fast, then -m immediate, then
// SIGKILL as a last resort) and removes the directory Start created.
// Idempotent: later calls return the first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if err := c.shutdown(); err != nil {
			errs = append(errs, err)
		}
		if c.root != "" {
			if err := os.RemoveAll(c.root); err != nil {
				errs = append(errs, fmt.Errorf("pgserver: removing %s: %w", c.root, err))
			}
		}
		c.stopErr = errors.Join(errs...)
		c.dog.release() // after the work it would otherwise do
	})
	return c.stopErr
}

// shutdown stops a running postmaster; nil if none is running (also when
// postmaster.pid is stale, as after Kill).
func (c *Cluster) shutdown() error {
	if pid := c.pid(); pid == 0 || !c.isOurPostmaster(pid) {
		return nil
	}
	// A fresh context: Stop must work even when the test's context is done.
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.timeout+waitDelay)
	defer cancel()
	pgCtl := filepath.Join(c.BinDir, "pg_ctl")
	t := strconv.Itoa(int(c.timeout.Seconds()))
	_, errFast := c.owner.run(ctx, c.root, pgCtl, "stop", "-w", "-t", t, "-m", "fast", "-D", c.DataDir)
	if errFast == nil {
		return nil
	}
	_, errImm := c.owner.run(ctx, c.root, pgCtl, "stop", "-w", "-t", t, "-m", "immediate", "-D", c.DataDir)
	if errImm == nil {
		return nil
	}
	if c.kill() {
		return nil
	}
	return fmt.Errorf("pgserver: could not stop server in %s: %w", c.DataDir, errors.Join(errFast, errImm))
}

// kill SIGKILLs the postmaster named in postmaster.pid, if any, and reports
// whether one was signalled. Its children exit once they notice it is gone.
func (c *Cluster) kill() bool {
	pid := c.pid()
	if pid <= 0 || !c.isOurPostmaster(pid) {
		return false
	}
	return syscall.Kill(pid, syscall.SIGKILL) == nil
}

// isOurPostmaster guards kill against a stale postmaster.pid whose pid was
// reused: the process must run our postgres binary on our data dir.
func (c *Cluster) isOurPostmaster(pid int) bool {
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	exe, err := os.Readlink(filepath.Join(proc, "exe"))
	if err != nil {
		return false
	}
	want, err := filepath.EvalSymlinks(filepath.Join(c.BinDir, "postgres"))
	if err != nil || exe != want {
		return false
	}
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	return err == nil && strings.Contains(string(cmdline), c.DataDir)
}

// pid reads the postmaster's pid from postmaster.pid (0 if absent/invalid).
func (c *Cluster) pid() int {
	if c.DataDir == "" {
		return 0
	}
	f, err := os.Open(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	if !s.Scan() {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s.Text()))
	if err != nil {
		return 0
	}
	return pid
}
