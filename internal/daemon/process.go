package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/sdnotify"
)

// RunOptions are what 'sluice run' adds to a daemon: the process around
// the proxy.
type RunOptions struct {
	// Pidfile, when set, gets this process's pid once it serves (and the
	// new one's after an upgrade); removed at a normal exit.
	Pidfile string
	// UpgradeBinary is what SIGUSR2 starts; "" disables upgrades (the
	// caller passes os.Executable, resolved at start).
	UpgradeBinary string
	// UpgradeArgs are the new process's arguments (this one's).
	UpgradeArgs []string
	// UpgradeTimeout bounds the wait for the new process to serve
	// (DefaultUpgradeTimeout when 0).
	UpgradeTimeout time.Duration
}

// RunWith starts sluice from the config file at path and serves until
// SIGTERM or SIGINT (or ctx ends), reloading on SIGHUP and upgrading on
// SIGUSR2. Started by an upgrade ($SLUICE_HANDOFF_FD), it checks its
// configuration before taking anything: a bad one is reported to the old
// process, which keeps serving, and RunWith returns it.
func RunWith(ctx context.Context, path string, logOut io.Writer, o RunOptions) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	conn, err := takeHandoff()
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		if conn != nil {
			refuseUpgrade(conn, fmt.Errorf("%s: %w", path, err))
		}
		return err
	}
	var succ *successor
	if conn != nil {
		if succ, err = receiveListeners(conn); err != nil {
			return err
		}
	}
	up := upgradeSettings{binary: o.UpgradeBinary, args: o.UpgradeArgs, timeout: o.UpgradeTimeout}
	if up.timeout <= 0 {
		up.timeout = DefaultUpgradeTimeout
	}
	d, err := start(cfg, path, logOut, succ, up, o.Pidfile)
	if err != nil {
		if succ != nil {
			succ.abort(err)
		}
		return err
	}
	// The pid file names this process before the old one hears ready
	// (it leaves the file alone from then on).
	if err := d.writePidfile(); err != nil {
		d.Log.Error("could not write the pid file", "file", d.pidfile, "error", err)
	}
	if succ != nil {
		d.succ = succ
		if err := succ.ready(d.Proxy, d, &d.adoptWG); err != nil {
			// The old process never heard ready: it keeps serving (and
			// stops this one); this one leaves quietly.
			d.Log.Error("upgrade: could not take over", "error", err)
			d.handedOver.Store(true)
			d.shutdownWithin(0)
			return err
		}
		d.notify.MainPID(os.Getpid())
	}
	d.notify.Ready()
	d.waitOn(ctx, sigs)
	return nil
}

// writePidfile writes the pid atomically (a reader never sees it half
// written, nor an empty file during an upgrade).
func (d *Daemon) writePidfile() error {
	if d.pidfile == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(d.pidfile), ".sluice-pid-*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), d.pidfile)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// removePidfile removes the pid file if it still names this process
// (after a hand-over it names the new one).
func (d *Daemon) removePidfile() {
	if d.pidfile == "" || d.handedOver.Load() {
		return
	}
	if pid, err := ReadPidfile(d.pidfile); err == nil && pid == os.Getpid() {
		os.Remove(d.pidfile)
	}
}

// ReadPidfile reads the pid a pid file names.
func ReadPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, errors.New(path + ": not a pid")
	}
	return pid, nil
}

// startWatchdog pings systemd's watchdog while Wait runs, from a
// goroutine of its own that the returned func stops and waits for.
func (d *Daemon) startWatchdog() func() {
	interval := sdnotify.WatchdogInterval()
	if interval <= 0 || !d.notify.Enabled() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sdnotify.RunWatchdog(ctx, interval, func() { d.notify.Watchdog() })
	}()
	return func() { cancel(); <-done }
}
