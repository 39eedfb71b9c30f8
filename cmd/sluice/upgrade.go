package main

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-proxy/sluice/internal/daemon"
)

// upgradeCmd signals the running sluice named by a pid file and waits
// for the pid file to name the process that took over.
func upgradeCmd() *cobra.Command {
	var pidfile string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "upgrade --pidfile FILE",
		Short: "Restart the running sluice into its binary on disk without dropping a connection",
		Long: `Send SIGUSR2 to the sluice whose pid the file names ('sluice run --pidfile')
and wait until the file names the new process. The running process starts
its binary (--upgrade-binary, by default the path it was started from) with
the same arguments; the new process checks its configuration, takes the
listening sockets and serves, then the old one stops accepting, drains and
exits. If the new process fails, the old one keeps serving and logs why,
and this command exits 1 once --wait has passed.

Under systemd use 'systemctl kill -s USR2 sluice' (see docs/operations.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			old, err := daemon.ReadPidfile(pidfile)
			if err != nil {
				return err
			}
			if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
				return fmt.Errorf("signalling pid %d: %w", old, err)
			}
			deadline := time.Now().Add(wait)
			for time.Now().Before(deadline) {
				if pid, err := daemon.ReadPidfile(pidfile); err == nil && pid != old {
					fmt.Fprintf(cmd.OutOrStdout(), "upgraded: pid %d serves (was %d)\n", pid, old)
					return nil
				}
				time.Sleep(100 * time.Millisecond)
			}
			return errors.New("the upgrade did not complete: the running sluice keeps serving; its log says why")
		},
	}
	c.Flags().StringVar(&pidfile, "pidfile", "", "the pid file 'sluice run --pidfile' writes")
	c.Flags().DurationVar(&wait, "wait", daemon.DefaultUpgradeTimeout+10*time.Second, "how long to wait for the new process")
	c.MarkFlagRequired("pidfile")
	return c
}
