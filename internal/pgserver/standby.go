package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StandbyOptions configure StartStandby. The zero value is a good default.
type StandbyOptions struct {
	Dir string // parent dir, as in Options; "" = os.TempDir()
	// Settings are applied after the primary's Options.Settings (which the
	// standby inherits) and hot_standby=on.
	Settings map[string]string
	Log      io.Writer // as in Options
	// StartTimeout bounds each pg_ctl wait; 0 = the primary's.
	StartTimeout time.Duration
}

// StartStandby makes a streaming hot standby of c: pg_basebackup -R (WAL
// streamed during the copy, connection settings written to
// postgresql.auto.conf) from c's unix socket into a fresh directory, then a
// server on a free port. The standby is a *Cluster like any other: Query,
// Exec and Stop work on it, and so do Promote, Kill, Shutdown, Restart and
// PauseReplay. It streams from c's socket, so it follows c until c stops
// (or Follow points it elsewhere). No replication slot is used: the
// primary keeps WAL back to its last checkpoint, which is plenty for a test.
// On error nothing is left running and the directory is removed.
func (c *Cluster) StartStandby(ctx context.Context, opts StandbyOptions) (*Cluster, error) {
	if err := validateSettings(opts.Settings); err != nil {
		return nil, err
	}
	settings := map[string]string{}
	maps.Copy(settings, c.settings)
	settings["hot_standby"] = "on"
	maps.Copy(settings, opts.Settings)
	root, err := os.MkdirTemp(opts.Dir, "sluice-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s := &Cluster{
		Host:      "127.0.0.1",
		SocketDir: filepath.Join(root, "sock"),
		DataDir:   filepath.Join(root, "data"),
		BinDir:    c.BinDir,
		LogFile:   filepath.Join(root, "data", "server.log"),
		root:      root,
		owner:     c.owner,
		settings:  settings,
		timeout:   opts.StartTimeout,
	}
	if s.timeout <= 0 {
		s.timeout = c.timeout
	}
	if s.dog, err = startWatchdog(s.DataDir, root); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	if err := s.startStandby(ctx, c); err != nil {
		if opts.Log != nil {
			fmt.Fprintln(opts.Log, err)
		}
		if serr := s.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return s, nil
}

func (s *Cluster) startStandby(ctx context.Context, primary *Cluster) error {
	if err := s.prepareRoot(); err != nil {
		return err
	}
	// The copy includes the primary's pgserver.conf (its port and socket
	// dir) and server.log; listen rewrites the first and removes the second.
	if _, err := s.owner.run(ctx, s.root, filepath.Join(s.BinDir, "pg_basebackup"),
		"-D", s.DataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync",
		"-h", primary.SocketDir, "-p", strconv.Itoa(primary.Port), "-U", Superuser); err != nil {
		return err
	}
	return s.listen(ctx, 0)
}

// prepareRoot makes the socket dir and hands the tree to the server's OS
// user, failing early and clearly if that user cannot reach it.
func (c *Cluster) prepareRoot() error {
	// A unix socket path is limited to 107 bytes; fail clearly, not in the log.
	if n := len(filepath.Join(c.SocketDir, ".s.PGSQL.65535")); n > 107 {
		return fmt.Errorf("pgserver: socket path under %s is %d bytes, over the 107-byte limit; use a shorter Options.Dir", c.root, n)
	}
	if err := os.Chmod(c.root, 0o755); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if err := os.Mkdir(c.SocketDir, 0o755); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if err := c.owner.chown(c.root, c.SocketDir); err != nil {
		return err
	}
	return c.owner.checkTraversable(c.root)
}

// Promote ends recovery on a standby (pg_ctl promote) and waits until it
// accepts writes. The new primary switches to a new timeline.
func (c *Cluster) Promote(ctx context.Context) error {
	_, err := c.owner.run(ctx, c.root, filepath.Join(c.BinDir, "pg_ctl"), "promote", "-w",
		"-t", strconv.Itoa(int(c.timeout.Seconds())), "-D", c.DataDir)
	return err
}

// Kill sends SIGKILL to the postmaster, like a crash, and waits until it
// and every child (they exit on their own once the postmaster is gone) have
// exited, so that the port is free and Restart can run crash recovery.
// It fails if no server is running.
func (c *Cluster) Kill(ctx context.Context) error {
	pid := c.pid()
	if pid == 0 || !c.isOurPostmaster(pid) {
		return fmt.Errorf("pgserver: Kill: no server running in %s", c.DataDir)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("pgserver: Kill: %w", err)
	}
	return c.waitNoProcesses(ctx)
}

// waitNoProcesses waits until no live process has the data directory as
// its working directory: the postmaster and all its children chdir there.
func (c *Cluster) waitNoProcesses(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for {
		left := c.processes()
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: processes %v still running in %s: %w", left, c.DataDir, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// processes lists live (not zombie) processes whose cwd is DataDir.
func (c *Cluster) processes() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err != nil || cwd != c.DataDir {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) S ...": the state follows the last ')'.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// Running reports whether the postmaster is up (it may still be starting
// or shutting down).
func (c *Cluster) Running() bool {
	pid := c.pid()
	return pid != 0 && c.isOurPostmaster(pid)
}

// Shutdown stops the server (pg_ctl stop -m fast) but keeps its data
// directory, so that Restart can start it again on the same port. It is a
// no-op when the server is not running. Stop still removes everything.
func (c *Cluster) Shutdown(ctx context.Context) error {
	if !c.Running() {
		return nil
	}
	_, err := c.owner.run(ctx, c.root, filepath.Join(c.BinDir, "pg_ctl"), "stop", "-w",
		"-t", strconv.Itoa(int(c.timeout.Seconds())), "-m", "fast", "-D", c.DataDir)
	return err
}

// Restart starts the server again on the same port, after Shutdown or
// Kill (then it runs crash recovery first); a running server is shut down
// first. A standby comes back as a standby of the same primary, a primary
// as a primary on its old timeline.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.Shutdown(ctx); err != nil {
		return err
	}
	if err := c.waitNoProcesses(ctx); err != nil {
		return err
	}
	// A killed postmaster whose zombie nobody reaps still "exists" for the
	// server's stale-lock checks; its children are gone (checked above).
	if pid := c.pid(); pid != 0 && !c.isOurPostmaster(pid) {
		for _, f := range []string{filepath.Join(c.DataDir, "postmaster.pid"),
			filepath.Join(c.SocketDir, fmt.Sprintf(".s.PGSQL.%d.lock", c.Port))} {
			if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("pgserver: %w", err)
			}
		}
	}
	return c.listen(ctx, c.Port)
}

// PauseReplay asks a standby to pause WAL replay (pg_wal_replay_pause()):
// it keeps receiving WAL but stops applying it, so its replay lag grows
// while the primary writes. Replay pauses at the next record it applies.
func (c *Cluster) PauseReplay(ctx context.Context) error {
	return c.Exec(ctx, "SELECT pg_catalog.pg_wal_replay_pause()")
}

// ResumeReplay undoes PauseReplay (pg_wal_replay_resume()).
func (c *Cluster) ResumeReplay(ctx context.Context) error {
	return c.Exec(ctx, "SELECT pg_catalog.pg_wal_replay_resume()")
}

// InRecovery reports pg_is_in_recovery(): true on a standby.
func (c *Cluster) InRecovery(ctx context.Context) (bool, error) {
	rows, err := c.Query(ctx, "SELECT pg_catalog.pg_is_in_recovery()")
	if err != nil {
		return false, err
	}
	return rows[0][0] == "t", nil
}

// Timeline returns the server's timeline: on a primary the timeline it
// writes WAL on (the first 8 hex digits of the current WAL file name, which
// changes the moment a promotion ends, unlike pg_control_checkpoint() that
// waits for the next checkpoint); on a standby the timeline it is receiving
// (pg_stat_wal_receiver.received_tli), else that of its last restartpoint.
func (c *Cluster) Timeline(ctx context.Context) (uint32, error) {
	rows, err := c.Query(ctx, `SELECT CASE WHEN pg_catalog.pg_is_in_recovery()
		THEN coalesce((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver),
			(SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()))
		ELSE ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END`)
	if err != nil {
		return 0, err
	}
	tli, err := strconv.ParseUint(rows[0][0], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("pgserver: timeline %q: %w", rows[0][0], err)
	}
	return uint32(tli), nil
}

// CurrentLSN returns, as text ("0/3000148"), on a primary the end of the
// last WAL record inserted, on a standby pg_last_wal_replay_lsn(). The
// primary's value is pg_current_wal_insert_lsn() (with the cluster's
// synchronous_commit=off, pg_current_wal_lsn(), the write position, can
// still be before the last commit), moved back to the page start when it
// points just past a page header: after a WAL segment switch (pg_basebackup
// causes one) the insert position is 0/3000028 while the last record ends,
// and a standby's replay stops, at 0/3000000. No record ends within the
// first 40 bytes of a page except a continuation ending there, and a standby
// past the page start has replayed that too, so the comparison stays exact.
func (c *Cluster) CurrentLSN(ctx context.Context) (string, error) {
	rows, err := c.Query(ctx, `SELECT CASE WHEN pg_catalog.pg_is_in_recovery()
		THEN pg_catalog.pg_last_wal_replay_lsn() ELSE (
			SELECT CASE WHEN off <= 40 THEN lsn - off ELSE lsn END
			FROM (SELECT lsn, (lsn - '0/0'::pg_lsn) % pg_catalog.current_setting('wal_block_size')::numeric AS off
				FROM (SELECT pg_catalog.pg_current_wal_insert_lsn() AS lsn) l) o) END`)
	if err != nil {
		return "", err
	}
	return rows[0][0], nil
}

// WaitReplayed waits until the standby c has replayed everything primary
// had inserted into its WAL when WaitReplayed was called, so every
// transaction committed before the call is visible on c (or ctx ends).
func (c *Cluster) WaitReplayed(ctx context.Context, primary *Cluster) error {
	lsn, err := primary.CurrentLSN(ctx)
	if err != nil {
		return err
	}
	q := "SELECT coalesce(pg_catalog.pg_last_wal_replay_lsn() >= " + QuoteLiteral(lsn) + "::pg_lsn, false)"
	for {
		rows, err := c.Query(ctx, q)
		if err != nil {
			return err
		}
		if rows[0][0] == "t" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: standby on port %d has not replayed %s: %w", c.Port, lsn, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Follow points the standby c at primary (primary_conninfo over primary's
// socket, then a reload; PostgreSQL 13+ applies it without a restart). With
// recovery_target_timeline 'latest' (the default) a standby of a failed
// primary can follow the standby that was promoted in its place, provided it
// has not received WAL past the point where the new timeline forked.
func (c *Cluster) Follow(ctx context.Context, primary *Cluster) error {
	conninfo := strings.Join([]string{kv("host", primary.SocketDir), kv("port", strconv.Itoa(primary.Port)),
		kv("user", Superuser), "sslmode=disable"}, " ")
	// Two round trips: ALTER SYSTEM refuses to run in a multi-statement query.
	if err := c.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = "+QuoteLiteral(conninfo)); err != nil {
		return err
	}
	return c.Exec(ctx, "SELECT pg_catalog.pg_reload_conf()")
}
