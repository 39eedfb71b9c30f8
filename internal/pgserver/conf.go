package pgserver

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// confFile is written by us and included from postgresql.conf, so the port
// can be rewritten on a retry without touching initdb's file.
const confFile = "pgserver.conf"

// hbaConf: the superuser is trusted (tests and tooling need no password),
// also for replication connections, so pg_basebackup and a standby's
// walreceiver can stream from the cluster (StartStandby); everyone else must
// authenticate. "md5" means SCRAM for SCRAM-stored passwords and MD5 for
// MD5-stored ones, so one cluster serves both kinds of test role.
const hbaConf = `# written by sluice internal/pgserver
local all postgres trust
host  all postgres 127.0.0.1/32 trust
host  all postgres ::1/128 trust
local replication postgres trust
host  replication postgres 127.0.0.1/32 trust
host  replication postgres ::1/128 trust
local all all md5
host  all all 127.0.0.1/32 md5
host  all all ::1/128 md5
`

// managedSettings are derived from Options/Cluster fields; letting Settings
// change them would make Cluster.Port or SocketDir lie.
var managedSettings = map[string]bool{"port": true, "unix_socket_directories": true}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// validateSettings rejects names and values that could not be written as one
// postgresql.conf line.
func validateSettings(settings map[string]string) error {
	for k, v := range settings {
		if !settingName.MatchString(k) {
			return fmt.Errorf("pgserver: invalid setting name %q", k)
		}
		if managedSettings[strings.ToLower(k)] {
			return fmt.Errorf("pgserver: setting %q is managed by pgserver (use Options.Port / Cluster.SocketDir)", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("pgserver: setting %s: value contains a line break or NUL", k)
		}
	}
	return nil
}

// renderConf returns pgserver.conf: fast-but-unsafe defaults for a throwaway
// cluster, then Settings in name order (later lines win in postgresql.conf).
func renderConf(port int, socketDir string, settings map[string]string) string {
	var b strings.Builder
	b.WriteString("# written by sluice internal/pgserver; later lines win\n")
	line := func(k, v string) {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `''`))
	}
	line("listen_addresses", "127.0.0.1")
	line("port", strconv.Itoa(port))
	line("unix_socket_directories", socketDir)
	line("max_connections", "300")
	line("fsync", "off")
	line("synchronous_commit", "off")
	line("full_page_writes", "off")
	line("password_encryption", "scram-sha-256")
	line("logging_collector", "off")
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line(k, settings[k])
	}
	return b.String()
}

// writeInitialConf installs pg_hba.conf and makes postgresql.conf include
// pgserver.conf. Runs once, after initdb.
func writeInitialConf(dataDir string, o *owner) error {
	hba := filepath.Join(dataDir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(hbaConf), 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	main := filepath.Join(dataDir, "postgresql.conf")
	f, err := os.OpenFile(main, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	_, err = fmt.Fprintf(f, "\ninclude '%s'\n", confFile)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	return o.chown(hba)
}

// writePortConf (re)writes pgserver.conf for one start attempt.
func writePortConf(dataDir string, o *owner, port int, socketDir string, settings map[string]string) error {
	p := filepath.Join(dataDir, confFile)
	if err := os.WriteFile(p, []byte(renderConf(port, socketDir, settings)), 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	return o.chown(p)
}
