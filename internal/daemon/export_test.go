package daemon

import "time"

// UpgradeTo runs an upgrade to binary (with args) as SIGUSR2 would,
// without the hand-over that follows a success; the new process's
// hand-off socket is closed at once then (tests use fake peers).
func (d *Daemon) UpgradeTo(binary string, args []string, timeout time.Duration) error {
	d.upgradeCfg = upgradeSettings{binary: binary, args: args, timeout: timeout}
	conn, _, err := d.tryUpgrade()
	if err == nil {
		conn.Close()
		d.upgradeMu.Unlock()
	}
	return err
}
