// Command sluice is a PostgreSQL proxy and connection pooler. This file
// only wires cobra commands to the internal packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/demo"
	"github.com/sluice-proxy/sluice/internal/version"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice",
		Short: "PostgreSQL proxy and connection pooler",
		Long: `sluice sits between applications and PostgreSQL. It authenticates clients
itself, pools server connections, and relays sessions.

Start with 'sluice demo' to see it run in front of a throwaway PostgreSQL,
then write a config file (see docs/configuration.md) and use 'sluice run'.`,
		SilenceUsage: true,
		// --version prints what 'sluice version' prints.
		Version: version.Version,
	}
	root.SetVersionTemplate(version.String() + "\n")
	root.AddCommand(runCmd(), checkCmd(), versionCmd(), demoCmd(), tokenCmd(), healthcheckCmd(), manCmd(), upgradeCmd())
	return root
}

func runCmd() *cobra.Command {
	var path string
	var o daemon.RunOptions
	c := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the proxy in the foreground, logging to stderr",
		Long: `Run the proxy in the foreground, logging to stderr.

Signals: SIGHUP reloads users, pool sizes and the log level without dropping
sessions (an invalid file is logged and the running config kept); SIGTERM or
SIGINT stops accepting clients, lets sessions finish for shutdown_timeout,
then ends the rest with SQLSTATE 57P01; SIGUSR2 (or 'sluice upgrade') starts
--upgrade-binary with the same arguments and hands it the listening sockets
without refusing a connection, then this process drains and exits (a new
process that fails to start leaves this one serving). Under systemd
(Type=notify) it reports READY, RELOADING, STOPPING, MAINPID and pings the
watchdog.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stopProfile, err := startCPUProfile()
			if err != nil {
				return err
			}
			if o.UpgradeBinary == "" {
				// Resolved now: after a package upgrade replaced the
				// file, this is the path of the new binary.
				if o.UpgradeBinary, err = os.Executable(); err != nil {
					return err
				}
			}
			o.UpgradeArgs = os.Args[1:]
			err = daemon.RunWith(context.Background(), path, os.Stderr, o)
			stopProfile()
			var ps config.Problems
			if errors.As(err, &ps) {
				fmt.Fprintf(os.Stderr, "%s: invalid configuration:\n%s\n", path, ps.Error())
				return err
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "sluice:", err)
			}
			return err
		},
		SilenceErrors: true,
	}
	c.Flags().StringVarP(&path, "config", "c", "sluice.yaml", "path to the YAML config file")
	c.Flags().StringVar(&o.Pidfile, "pidfile", "", "write the serving process's pid to this file (the new one's after an upgrade)")
	c.Flags().StringVar(&o.UpgradeBinary, "upgrade-binary", "", "the binary SIGUSR2 starts (default: the path sluice was started from)")
	c.Flags().DurationVar(&o.UpgradeTimeout, "upgrade-timeout", daemon.DefaultUpgradeTimeout, "how long an upgrade waits for the new process to serve before giving up")
	return c
}

func checkCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "check-config --config FILE",
		Short: "Validate a config file: exit 0 if valid, else print every problem and exit 1",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := config.Load(path)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err.Error())
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			return nil
		},
		SilenceErrors: true,
	}
	c.Flags().StringVarP(&path, "config", "c", "sluice.yaml", "path to the YAML config file")
	return c
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print sluice's version, the commit it was built from and the Go version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String())
		},
	}
}

func demoCmd() *cobra.Command {
	var o demo.Options
	var failover, hold, fleet bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run sluice in front of a throwaway local PostgreSQL and print how to connect",
		Long: `Start a throwaway PostgreSQL from the local binaries (install them with
'apt-get install -y postgresql'), create a demo user and database, start
sluice in front of it and print the psql line to connect and the metrics URL.
Ctrl-C stops everything and removes what was created.

With --failover: a primary plus a synchronous streaming standby, sluice in
front (transaction mode, failover.auto_promote), a writer printing how many
inserts were acknowledged; after 5 s the primary is killed with SIGKILL,
sluice promotes the standby and the counter continues. After a summary
(outage, every acknowledged write present on the new primary) it exits, 0
when none was lost.

With --fleet: etcd, a primary plus a synchronous standby, three sluice
processes (this binary, 'run') deciding failover through etcd and HAProxy
round robin in front, on free ports; a writer through HAProxy; the primary
killed with SIGKILL, then the sluice that promoted. The summary checks
that no acknowledged write was lost or duplicated and that the fleet
promoted once (fencing epoch 2). Needs etcd and haproxy installed
(Debian: etcd-server, haproxy); everything it starts is stopped on exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			o.Out, o.LogOut = cmd.OutOrStdout(), os.Stderr
			if fleet {
				o.Fleet = &demo.FleetOptions{}
			} else if failover || hold {
				o.Failover = &demo.FailoverOptions{Hold: hold}
			}
			return demo.Run(ctx, o)
		},
	}
	c.Flags().IntVar(&o.Port, "port", 0, "sluice's TCP port (default 6432 when free)")
	c.Flags().IntVar(&o.AdminPort, "admin-port", 0, "admin HTTP port (default 9930 when free)")
	c.Flags().BoolVar(&failover, "failover", false, "kill the primary of a primary/standby pair under a write load and watch sluice fail over")
	c.Flags().BoolVar(&fleet, "fleet", false, "etcd, a primary/standby pair, three sluices and HAProxy: kill the primary, then a sluice")
	c.Flags().BoolVar(&hold, "failover-hold", false, "with --failover: keep running after the summary until Ctrl-C (implies --failover)")
	return c
}
