// Package demo runs `sluice demo`: a throwaway PostgreSQL from the local
// binaries, a demo role and database in it, and sluice in front, until
// the user presses Ctrl-C. `sluice demo --failover` instead runs a primary
// and a standby, kills the primary under a write load and shows sluice
// carrying on; `sluice demo --fleet` does it with three sluices deciding
// failover through etcd behind HAProxy, and kills one sluice too.
// Everything it creates is removed on exit.
package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// Options configure the demo.
type Options struct {
	Port      int // sluice's TCP port; 0 picks 6432 if free, else any free port
	AdminPort int // 0 picks 9930 if free, else any free port
	Out       io.Writer
	LogOut    io.Writer
	// Failover, when set, runs the failover demo instead (demo_failover.go):
	// a primary and a synchronous standby, a write counter, the primary
	// killed, the counter continuing; it exits after a summary.
	Failover *FailoverOptions
	// Fleet, when set, runs the fleet demo instead (fleet_run.go): etcd,
	// a primary and a synchronous standby, three sluice processes and
	// HAProxy; the primary killed, then one sluice; a summary.
	Fleet *FleetOptions
}

const (
	demoUser     = "demo"
	demoPassword = "demo_pw"
	demoDB       = "demo"
)

// Run starts everything, prints how to connect, and blocks until ctx ends
// or SIGINT/SIGTERM arrives.
func Run(ctx context.Context, o Options) error {
	if o.Fleet != nil {
		return runFleet(ctx, o)
	}
	if o.Failover != nil {
		return runFailover(ctx, o)
	}
	if _, err := pgserver.FindBinDir(); err != nil {
		return err
	}
	fmt.Fprintln(o.Out, "starting a throwaway PostgreSQL ...")
	cluster, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return err
	}
	defer func() {
		cluster.Stop()
		fmt.Fprintln(o.Out, "demo PostgreSQL stopped and removed")
	}()
	if err := cluster.CreateRole(ctx, demoUser, demoPassword, "scram-sha-256"); err != nil {
		return err
	}
	if err := cluster.CreateDatabase(ctx, demoDB, demoUser); err != nil {
		return err
	}
	if err := cluster.ExecDB(ctx, demoDB, "CREATE TABLE greetings (id serial PRIMARY KEY, text text NOT NULL); INSERT INTO greetings (text) VALUES ('hello from behind sluice')"); err != nil {
		return err
	}
	if err := cluster.ExecDB(ctx, demoDB, "ALTER TABLE greetings OWNER TO "+demoUser); err != nil {
		return err
	}
	sockDir, err := os.MkdirTemp("", "sluice-demo-sock-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	port, adminPort := pick(o.Port, 6432), pick(o.AdminPort, 9930)
	cfgText := fmt.Sprintf(`listen:
  address: 127.0.0.1:%d
  socket_dir: %s
admin:
  address: 127.0.0.1:%d
log:
  level: info
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool:
      min_size: 2
      max_size: 20
`, port, sockDir, adminPort, demoUser, demoPassword, demoDB, cluster.Port)
	cfgPath := filepath.Join(sockDir, "sluice.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	d, err := daemon.Start(cfg, cfgPath, o.LogOut)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, `
sluice is running in front of a throwaway PostgreSQL (port %d).

  connect:  psql "postgresql://%s:%s@127.0.0.1:%d/%s?sslmode=disable"
  or:       PGPASSWORD=%s psql -h %s -p %d -U %s %s
  try:      SELECT text FROM greetings;  SELECT pg_backend_pid();
  metrics:  http://127.0.0.1:%d/metrics
  config:   %s

Press Ctrl-C to stop; everything is removed.
`, cluster.Port, demoUser, demoPassword, port, demoDB, demoPassword, sockDir, port, demoUser, demoDB, adminPort, cfgPath)
	d.Wait(ctx)
	return nil
}

// pick returns want if given, else def when it is free, else a free port.
func pick(want, def int) int {
	if want != 0 {
		return want
	}
	if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(def)); err == nil {
		l.Close()
		return def
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return def
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
