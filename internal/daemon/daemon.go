// Package daemon runs a whole sluice process: logging, the proxy, the
// admin endpoint, and the signals that reload (SIGHUP) or stop it
// (SIGTERM, SIGINT). cmd/sluice and `sluice demo` both use it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/internal/admin"
	"github.com/sluice-proxy/sluice/internal/cluster"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/dashboard"
	"github.com/sluice-proxy/sluice/internal/handoff"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/sdnotify"
	"github.com/sluice-proxy/sluice/internal/version"
)

// Daemon is a started sluice.
type Daemon struct {
	Proxy *proxy.Server
	Admin *admin.Server // nil when admin.address is ""
	Log   *slog.Logger
	// Cluster is the instance's membership in the fleet; nil without a
	// cluster section. The daemon starts it after the listener and
	// closes it (revoking its lease) after the clients are gone.
	Cluster *cluster.Member
	// Promoter holds the fleet's failover elections (nil without a
	// cluster section); closed before the member.
	Promoter *cluster.Promoter
	// Budget is this instance's share of the databases'
	// max_db_connections in the fleet; nil outside a fleet or without
	// one (budget.go).
	Budget *cluster.Budget

	leaveTimeout time.Duration // bounds the revoke at shutdown (the etcd dial_timeout in force at start)

	path     string
	level    *slog.LevelVar
	shutdown atomic.Int64 // shutdown_timeout, as a time.Duration
	stopping atomic.Bool
	// reloadMu serialises reloads: SIGHUP, the console's RELOAD and the
	// API's POST /api/reload may come at once.
	reloadMu sync.Mutex
	// stopReq carries a shutdown asked for by the console or the API
	// (true: wait for clients) to Wait.
	stopReq chan bool

	// The process side of upgrades (upgrade.go, inherit.go, process.go):
	// notify speaks to systemd (a no-op outside it); pidfile is
	// --pidfile ("" for none); upgradeCfg says what SIGUSR2 starts;
	// adminAddress is admin.address as configured (the admin socket's
	// name in a hand-off); handedOver is set once a new process serves;
	// succ, in a process started by an upgrade, is the socket clients
	// arrive on, read by one goroutine counted in adoptWG.
	notify       *sdnotify.Notifier
	pidfile      string
	upgradeCfg   upgradeSettings
	adminAddress string
	handedOver   atomic.Bool
	// upgradeMu lets one upgrade run at a time (SIGUSR2, the console's
	// UPGRADE, the API); handOverReq carries a success of the latter two
	// to Wait.
	upgradeMu   sync.Mutex
	handOverReq chan pendingHandOver
	succ        *successor
	adoptWG     sync.WaitGroup
}

// NewLogger builds the process logger; its level can change on reload.
func NewLogger(cfg *config.Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// Start starts the proxy and admin endpoint for cfg, loaded from path
// (which Reload reads again; "" disables reloading).
func Start(cfg *config.Config, path string, logOut io.Writer) (*Daemon, error) {
	return start(cfg, path, logOut, nil, upgradeSettings{}, "")
}

// start is Start, serving the listeners succ brings when not nil (they
// are the server's from here on, taken or closed).
// up says what an upgrade starts (binary "": it cannot); pidfile is
// --pidfile. Both are set before the console and the API can upgrade.
func start(cfg *config.Config, path string, logOut io.Writer, succ *successor, up upgradeSettings, pidfile string) (*Daemon, error) {
	log, level := NewLogger(cfg, logOut)
	raiseOpenFilesLimit(cfg, log)
	srv, err := proxy.New(cfg, log)
	if err != nil {
		return nil, err
	}
	if succ != nil {
		srv.Inherit(succ.listeners)
		succ.listeners = nil
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	d := &Daemon{Proxy: srv, Log: log, path: path, level: level, stopReq: make(chan bool, 1),
		leaveTimeout: cfg.Cluster.Etcd.DialTimeout.D() + time.Second,
		notify:       sdnotify.FromEnv(), adminAddress: cfg.Admin.Address,
		upgradeCfg: up, pidfile: pidfile, handOverReq: make(chan pendingHandOver, 1)}
	d.shutdown.Store(int64(cfg.ShutdownTimeout.D()))
	var seat handoff.FleetSeat
	if succ != nil {
		seat = succ.peer.Fleet
	}
	member, err := startCluster(cfg, srv, log, seat)
	if err != nil {
		srv.Shutdown(context.Background())
		return nil, err
	}
	d.Cluster = member
	if member != nil {
		if d.Promoter, err = startPromoter(member, srv, log); err != nil {
			d.leaveFleet()
			srv.Shutdown(context.Background())
			return nil, err
		}
		if d.Budget, err = startBudget(cfg, srv, member.InstanceID(), succ != nil, log); err != nil {
			d.leaveFleet()
			srv.Shutdown(context.Background())
			return nil, err
		}
	}
	op := proxy.Operator{Version: version.String(), Reload: d.Reload, Shutdown: d.requestStop}
	if up.binary != "" {
		op.Upgrade = d.requestUpgrade
	}
	var fleet func() *console.FleetHealth
	if member != nil {
		op.Peers = func() []console.Peer { return peersView(member) }
		op.Failover = func() []console.Failover { return failoverView(d.Promoter) }
		fleet = func() *console.FleetHealth { return fleetHealth(member, d.Promoter) }
	}
	srv.SetOperator(op)
	if cfg.Admin.Address != "" {
		reg := srv.Metrics().Registry
		a, err := admin.StartWith(admin.Options{Address: cfg.Admin.Address, Registry: reg, Dashboard: dashboard.New(reg.Gather),
			Healthy: func() bool { return !d.stopping.Load() }, Proxy: srv, Fleet: fleet,
			TLSCertFile: cfg.Admin.TLSCertFile, TLSKeyFile: cfg.Admin.TLSKeyFile, Log: log,
			Inherited: succ.adminFor(cfg.Admin.Address)})
		if err != nil {
			d.leaveBudget()
			d.leaveFleet()
			srv.Shutdown(context.Background())
			return nil, err
		}
		d.Admin = a
	}
	return d, nil
}

// Reload reads the config file again and applies it; an invalid file is
// logged and the running config kept, and the error returned (the
// console and the API show it).
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.notify.Reloading()
	defer d.notify.Ready() // a failed reload keeps the service as it was: ready
	if d.path == "" {
		return errors.New("sluice was started without a configuration file to reload")
	}
	cfg, err := config.Load(d.path)
	if err == nil {
		err = d.Proxy.Reload(cfg)
	}
	d.Proxy.Metrics().NoteReload(err)
	if err != nil {
		d.Log.Error("reload failed; keeping the running configuration", "file", d.path, "error", err)
		return fmt.Errorf("keeping the running configuration: %w", err)
	}
	d.level.Set(parseLevel(cfg.Log.Level))
	d.shutdown.Store(int64(cfg.ShutdownTimeout.D()))
	if d.Cluster != nil {
		d.Cluster.UpdateConfig(cluster.DatabaseNames(cfg), cluster.FingerprintOf(cfg))
	}
	d.reloadBudget(cfg)
	d.Log.Info("configuration reloaded", "file", d.path)
	return nil
}

// requestStop asks Wait to shut down (the console's SHUTDOWN, the API's
// POST /api/shutdown); it returns at once. waitForClients waits for
// every client to leave; without it clients are ended at once, as
// PgBouncer's SHUTDOWN does.
func (d *Daemon) requestStop(waitForClients bool) {
	select {
	case d.stopReq <- waitForClients:
	default: // already asked
	}
}

// Shutdown stops accepting clients, waits up to shutdown_timeout for
// sessions to end, terminates the rest with 57P01, and stops the admin
// endpoint.
func (d *Daemon) Shutdown() {
	d.shutdownWithin(time.Duration(d.shutdown.Load()))
}

// shutdownWithin is Shutdown with its own wait; < 0 waits for every
// client to leave.
func (d *Daemon) shutdownWithin(wait time.Duration) {
	d.stopping.Store(true)
	if !d.handedOver.Load() {
		d.notify.Stopping() // not after a hand-over: the unit goes on
	}
	d.Log.Info("shutting down", "wait_for_clients", wait)
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if wait >= 0 {
		ctx, cancel = context.WithTimeout(ctx, wait)
	} else {
		// SHUTDOWN WAIT_FOR_CLIENTS, as PgBouncer's: stop accepting and
		// exit when the last client has left, however long that takes.
		// Shutdown alone would end a transaction-pooled client at its next
		// idle point.
		d.Proxy.CloseListeners()
		d.Proxy.WaitClientsGone(ctx)
	}
	defer cancel()
	d.Proxy.Shutdown(ctx)
	d.leaveBudget()
	d.leaveFleet()
	if d.Admin != nil {
		d.Admin.Close()
	}
	if d.succ != nil {
		d.succ.conn.Close() // ends the adoption of clients, if still on
	}
	d.adoptWG.Wait()
	d.removePidfile()
	d.notify.Close()
	d.Log.Info("stopped")
}

// Run starts sluice from the config file at path and serves until SIGTERM
// or SIGINT (or ctx ends), reloading on SIGHUP.
func Run(ctx context.Context, path string, logOut io.Writer) error {
	return RunWith(ctx, path, logOut, RunOptions{})
}

// Wait serves until ctx ends or a stop signal arrives, reloading on
// SIGHUP, then shuts down.
func (d *Daemon) Wait(ctx context.Context) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	d.waitOn(ctx, sigs)
}

// waitOn is Wait on signals registered by the caller (RunWith registers
// them before it writes the pid file, so that a SIGUSR2 sent as soon as
// the pid is known is never taken for the default action).
func (d *Daemon) waitOn(ctx context.Context, sigs chan os.Signal) {
	defer signal.Stop(sigs)
	stopWatchdog := d.startWatchdog()
	defer stopWatchdog()
	for {
		select {
		case <-ctx.Done():
			d.Shutdown()
			return
		case h := <-d.handOverReq:
			d.handOver(h.conn, h.peer)
			return
		case wait := <-d.stopReq:
			d.Log.Info("shutdown asked by an operator", "wait_for_clients", wait)
			if wait {
				d.shutdownWithin(-1)
			} else {
				d.shutdownWithin(0)
			}
			return
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.Reload()
				continue
			}
			if sig == syscall.SIGUSR2 {
				d.Log.Info("upgrade asked", "signal", sig.String(), "binary", d.upgradeCfg.binary)
				if conn, peer, err := d.tryUpgrade(); err == nil {
					d.handOver(conn, peer)
					return
				}
				continue
			}
			d.Log.Info("signal received", "signal", sig.String())
			d.Shutdown()
			return
		}
	}
}
