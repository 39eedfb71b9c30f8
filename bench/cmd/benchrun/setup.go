package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// Roles and databases of the benchmark cluster. Clients use the same
// password for direct, PgBouncer and sluice connections.
const (
	userSCRAM = "bench_scram"
	userMD5   = "bench_md5"
	dbSession = "bench"    // PostgreSQL database, and the session pool's name on the poolers
	dbTx      = "bench_tx" // transaction pool's name on the poolers
)

var passwords = map[string]string{userSCRAM: "bench-scram-pw", userMD5: "bench-md5-pw"}

// Pool sizes from the issue: session 110, transaction 20, per (db, user).
const (
	sessionPool = 110
	txPool      = 20
)

// env is everything a run talks to. stop tears it all down.
type env struct {
	cfg     *config
	cluster *pgserver.Cluster
	pgb     *proc
	slc     *proc
	pgbPort int
	slcPort int
	clk     clockTick // unit of the poolers' CPU times

	sluiceTx    bool   // sluice accepts pool_mode: transaction
	sluiceTxWhy string // why not, for the report
	pgbIni      string // generated configs, quoted in the report
	slcYAML     string
}

// startCluster starts PostgreSQL, creates the two roles and loads pgbench
// tables at cfg.scale owned by the SCRAM role.
func startCluster(ctx context.Context, cfg *config) (*pgserver.Cluster, error) {
	c, err := pgserver.Start(ctx, pgserver.Options{Dir: cfg.workDir, Settings: map[string]string{
		// 110 session + 20 transaction server connections per user and
		// pooler, plus 100 direct clients in scenario 4.
		"max_connections": "700",
		"shared_buffers":  "512MB",
	}})
	if err != nil {
		return nil, err
	}
	steps := []func() error{
		func() error { return c.CreateRole(ctx, userSCRAM, passwords[userSCRAM], "scram-sha-256") },
		func() error { return c.CreateRole(ctx, userMD5, passwords[userMD5], "md5") },
		func() error { return c.CreateDatabase(ctx, dbSession, userSCRAM) },
		func() error {
			_, err := c.PgbenchEnv(ctx, []string{"PGPASSWORD=" + passwords[userSCRAM]}, "-i", "-q", "-I", "dtGvp",
				"-s", strconv.Itoa(cfg.scale), "-h", c.Host, "-p", strconv.Itoa(c.Port), "-U", userSCRAM, dbSession)
			return err
		},
		func() error {
			return c.ExecDB(ctx, dbSession, "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "+userMD5)
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// pgbouncerIni renders PgBouncer's configuration: the same pool sizes as
// sluice, auth_type md5 (which uses SCRAM for users whose userlist entry is
// a SCRAM verifier, as bench_scram's is, and md5 for md5 entries).
func pgbouncerIni(dir string, port, pgPort int) string {
	return fmt.Sprintf(`[databases]
%[1]s = host=127.0.0.1 port=%[2]d dbname=%[1]s pool_mode=session pool_size=%[3]d
%[4]s = host=127.0.0.1 port=%[2]d dbname=%[1]s pool_mode=transaction pool_size=%[5]d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[6]d
unix_socket_dir =
auth_type = md5
auth_file = %[7]s/userlist.txt
pool_mode = session
default_pool_size = %[3]d
max_client_conn = 12000
max_db_connections = 0
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
log_stats = 0
`, dbSession, pgPort, sessionPool, dbTx, txPool, port, dir)
}

// startPgbouncer writes the ini and a userlist with the verifiers stored in
// pg_authid, then starts PgBouncer in the foreground (as the postgres OS
// user when we are root).
func startPgbouncer(ctx context.Context, e *env) error {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/pgbouncer"); err != nil {
			return fmt.Errorf("pgbouncer not found (apt-get install -y pgbouncer): %w", err)
		}
	}
	dir := filepath.Join(e.cfg.workDir, "pgbouncer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rows, err := e.cluster.Query(ctx, "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('"+userSCRAM+"', '"+userMD5+"') ORDER BY 1")
	if err != nil {
		return err
	}
	var ul strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&ul, "%q %q\n", r[0], r[1])
	}
	if e.pgbPort, err = freePort(); err != nil {
		return err
	}
	e.pgbIni = pgbouncerIni(dir, e.pgbPort, e.cluster.Port)
	ini := filepath.Join(dir, "pgbouncer.ini")
	asUser := ""
	if os.Geteuid() == 0 {
		asUser = "postgres"
	}
	for name, text := range map[string]string{ini: e.pgbIni, filepath.Join(dir, "userlist.txt"): ul.String()} {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			return err
		}
		if asUser != "" {
			uid, gid, err := lookupUser(asUser)
			if err != nil {
				return err
			}
			if err := os.Chown(name, int(uid), int(gid)); err != nil {
				return err
			}
		}
	}
	if e.pgb, err = startProc("pgbouncer", filepath.Join(e.cfg.workDir, "pgbouncer.log"), asUser, bin, ini); err != nil {
		return err
	}
	return waitReady(ctx, e.pgb, e.dsn(pgbouncer, session, userSCRAM))
}

// sluiceYAML renders sluice's configuration. The transaction pool is only
// present when sluice supports it.
func sluiceYAML(port, pgPort int, withTx bool) string {
	s := fmt.Sprintf(`listen:
  address: 127.0.0.1:%d
admin:
  address: ""
log:
  level: warn
limits:
  max_client_connections: 12000
shutdown_timeout: 1s
users:
  - name: %s
    password: %s
    auth_method: scram-sha-256
  - name: %s
    password: %s
    auth_method: md5
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool_mode: session
    pool:
      max_size: %d
`, port, userSCRAM, passwords[userSCRAM], userMD5, passwords[userMD5], dbSession, pgPort, sessionPool)
	if withTx {
		s += fmt.Sprintf(`  %s:
    hosts: ["127.0.0.1:%d"]
    dbname: %s
    pool_mode: transaction
    pool:
      max_size: %d
`, dbTx, pgPort, dbSession, txPool)
	}
	return s
}

// startSluice detects transaction-pooling support with check-config, then
// starts `sluice run`.
func startSluice(ctx context.Context, e *env) error {
	var err error
	if e.slcPort, err = freePort(); err != nil {
		return err
	}
	path := filepath.Join(e.cfg.workDir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(sluiceYAML(e.slcPort, e.cluster.Port, true)), 0o600); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, e.cfg.sluiceBin, "check-config", "--config", path).CombinedOutput()
	e.sluiceTx = err == nil && e.cfg.sluiceTx != "off"
	switch {
	case e.cfg.sluiceTx == "off":
		e.sluiceTxWhy = "disabled with -sluice-tx=off"
	case err != nil && strings.Contains(string(out), "not implemented"):
		e.sluiceTxWhy = "n/a (transaction pooling not implemented yet)"
	case err != nil:
		e.sluiceTxWhy = "n/a (sluice rejects pool_mode: transaction: " + firstLine(string(out)) + ")"
	}
	e.slcYAML = sluiceYAML(e.slcPort, e.cluster.Port, e.sluiceTx)
	if err := os.WriteFile(path, []byte(e.slcYAML), 0o600); err != nil {
		return err
	}
	if e.slc, err = startProc("sluice", filepath.Join(e.cfg.workDir, "sluice.log"), "", e.cfg.sluiceBin, "run", "--config", path); err != nil {
		return err
	}
	return waitReady(ctx, e.slc, e.dsn(sluice, session, userSCRAM))
}

// port of a target.
func (e *env) port(target string) int {
	switch target {
	case pgbouncer:
		return e.pgbPort
	case sluice:
		return e.slcPort
	}
	return e.cluster.Port
}

// dbFor is the database name a client uses for target and pool mode.
func dbFor(target, mode string) string {
	if target != direct && mode == transaction {
		return dbTx
	}
	return dbSession
}

// dsn for a pgx/pgconn client of target in mode as user.
func (e *env) dsn(target, mode, user string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		e.port(target), user, passwords[user], dbFor(target, mode))
}

// stop ends the poolers, then PostgreSQL (which removes its directory).
func (e *env) stop() {
	e.slc.stop()
	e.pgb.stop()
	if e.cluster != nil {
		if err := e.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "benchrun: stopping PostgreSQL:", err)
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
