package tlstest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	certs "github.com/sluice-proxy/sluice/internal/backend/tlstest"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// authCompareHBA is put in front of the package cluster's pg_hba.conf for
// TestLoginErrorsMatchPostgreSQL: one database name per method, so that
// the other tests' lines stay as they are. The databases need not exist:
// PostgreSQL authenticates (and checks the role) before it looks the
// database up.
const authCompareHBA = `host      authcmp_scram    all 127.0.0.1/32 scram-sha-256
host      authcmp_md5      all 127.0.0.1/32 md5
host      authcmp_password all 127.0.0.1/32 password
host      authcmp_trust    all 127.0.0.1/32 trust
hostssl   authcmp_cert     all 127.0.0.1/32 cert
hostnossl authcmp_cert     all 127.0.0.1/32 reject
local     authcmp_local    all              reject
`

// authCompareAccess is the same as sluice access rules.
const authCompareAccess = `access:
  - {cidr: 127.0.0.1, databases: [authcmp_scram], method: scram-sha-256}
  - {cidr: 127.0.0.1, databases: [authcmp_md5], method: md5}
  - {cidr: 127.0.0.1, databases: [authcmp_password], method: password}
  - {cidr: 127.0.0.1, databases: [authcmp_trust], method: trust}
  - {cidr: 127.0.0.1, databases: [authcmp_cert], tls: required, method: cert}
  - {cidr: 127.0.0.1, databases: [authcmp_cert], tls: forbidden, method: reject}
  - {cidr: local, databases: [authcmp_local], method: reject}
  - {cidr: local}
`

// TestLoginErrorsMatchPostgreSQL logs in the same failing ways directly to
// PostgreSQL, configured per method in pg_hba.conf, and through sluice,
// configured the same way with access rules, and requires the same
// ErrorResponse: every field a client sees except where in PostgreSQL's
// source the error was raised (F, L, R), which sluice has no honest value
// for. An unknown user must read like a wrong password wherever
// PostgreSQL does not reveal that a role is missing (scram-sha-256, md5,
// password), and like PostgreSQL where it does (trust, and cert with a
// certificate for that name).
func TestLoginErrorsMatchPostgreSQL(t *testing.T) {
	pg := pgtest.Cluster(t)
	ctx := context.Background()
	dir := serverReadableDir(t)
	ca := certs.NewCA(t, dir, "clients")
	require.NoError(t, os.Chmod(ca.File, 0o644))
	configureCluster(t, pg, ca, dir)

	sluiceCert, sluiceKey := ca.Issue(t, dir, "sluice", "localhost", "127.0.0.1")
	dbs := ""
	for _, m := range []string{"scram", "md5", "password", "trust", "cert", "local"} {
		dbs += fmt.Sprintf("  authcmp_%s:\n    hosts: [\"127.0.0.1:%d\"]\n    dbname: %s\n", m, pg.Port, pgtest.AppDB)
	}
	logs := &syncbuf.Buffer{}
	sock := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`listen: {address: "127.0.0.1:0", socket_dir: %q}
admin: {address: ""}
shutdown_timeout: 5s
tls: {mode: allow, cert_file: %q, key_file: %q, client_ca_file: %q}
auth: {allow_plaintext_password: true}
limits: {auth_failure_burst: 0}
users:
  - {name: %s, password: %s}
  - {name: %s, password: %s}
databases:
%s%s`, sock, sluiceCert, sluiceKey, ca.File, pgtest.AppUser, pgtest.AppPassword, pgtest.MD5User, pgtest.MD5Password, dbs, authCompareAccess)), nil)
	require.NoError(t, err)
	srv, err := proxy.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
	})
	sluicePort := srv.Addr().(*net.TCPAddr).Port

	clientDir := t.TempDir()
	nobodyCert, nobodyKey := ca.Issue(t, clientDir, "nobody")
	otherCert, otherKey := ca.Issue(t, clientDir, "other")
	cases := []struct {
		name, db, user, password, extra string
		rawEmptyPassword                bool   // send an empty PasswordMessage whatever is asked for
		from                            string // the client's address ("" = 127.0.0.1, "local" = the Unix socket)
	}{
		{name: "scram unknown user", db: "scram", user: "nobody", password: "secret"},
		{name: "scram wrong password", db: "scram", user: pgtest.AppUser, password: "wrong"},
		{name: "scram empty password", db: "scram", user: pgtest.AppUser, password: ""},
		{name: "md5 unknown user", db: "md5", user: "nobody", password: "secret"},
		{name: "md5 wrong password", db: "md5", user: pgtest.MD5User, password: "wrong"},
		{name: "md5 empty password message", db: "md5", user: pgtest.MD5User, rawEmptyPassword: true},
		{name: "password unknown user", db: "password", user: "nobody", password: "secret"},
		{name: "password unknown user empty password", db: "password", user: "nobody", password: ""},
		{name: "password empty password", db: "password", user: pgtest.AppUser, password: ""},
		{name: "password wrong password", db: "password", user: pgtest.AppUser, password: "wrong"},
		{name: "trust unknown user", db: "trust", user: "nobody", password: "secret"},
		{name: "cert without a client certificate", db: "cert", user: pgtest.AppUser, extra: "sslmode=require"},
		{name: "cert for another name", db: "cert", user: pgtest.AppUser, extra: "sslmode=require sslcert=" + otherCert + " sslkey=" + otherKey},
		{name: "cert unknown user", db: "cert", user: "nobody", extra: "sslmode=require sslcert=" + nobodyCert + " sslkey=" + nobodyKey},
		{name: "cert without TLS", db: "cert", user: pgtest.AppUser, extra: "sslmode=disable"},
		{name: "no rule for the address", db: "scram", user: pgtest.AppUser, password: pgtest.AppPassword, from: "127.0.0.2"},
		{name: "no rule for the address over TLS", db: "scram", user: pgtest.AppUser, password: pgtest.AppPassword, from: "127.0.0.2", extra: "sslmode=require"},
		{name: "reject on the Unix socket", db: "local", user: pgtest.AppUser, password: pgtest.AppPassword, from: "local"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			login := func(port int, sockDir string) *pgconn.PgError {
				t.Helper()
				db := "authcmp_" + c.db
				if c.rawEmptyPassword {
					return rawEmptyPassword(t, port, c.user, db)
				}
				extra := c.extra
				if extra == "" {
					extra = "sslmode=disable"
				}
				host := "127.0.0.1"
				if c.from == "local" {
					host, extra = sockDir, ""
				}
				cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s password='%s' connect_timeout=60 %s", host, port, c.user, db, c.password, extra))
				require.NoError(t, err)
				if c.from != "" && c.from != "local" {
					d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.from)}}
					cfg.DialFunc = d.DialContext
				}
				conn, err := pgconn.ConnectConfig(ctx, cfg)
				if err == nil {
					conn.Close(ctx)
					t.Fatalf("port %d: login succeeded", port)
				}
				var pe *pgconn.PgError
				require.True(t, errors.As(err, &pe), "port %d: want an ErrorResponse, got %v", port, err)
				return pe
			}
			want, got := visible(login(pg.Port, pg.SocketDir)), visible(login(sluicePort, sock))
			t.Logf("PostgreSQL: %s %s %s", want.Severity, want.Code, want.Message)
			require.Equal(t, want, got)
		})
	}
}

// visible is what of an ErrorResponse a client sees: all but F, L and R.
func visible(pe *pgconn.PgError) pgconn.PgError {
	v := *pe
	v.File, v.Line, v.Routine = "", 0, ""
	return v
}

// rawEmptyPassword logs in on plain TCP and answers the password request,
// whichever it is, with an empty PasswordMessage (libpq and pgx never send
// one for md5), returning the ErrorResponse that follows.
func rawEmptyPassword(t *testing.T, port int, user, db string) *pgconn.PgError {
	t.Helper()
	nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(time.Minute)))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": user, "database": db}})
	require.NoError(t, fe.Flush())
	for {
		msg, err := fe.Receive()
		require.NoError(t, err)
		switch m := msg.(type) {
		case *pgproto3.AuthenticationMD5Password, *pgproto3.AuthenticationCleartextPassword:
			fe.Send(&pgproto3.PasswordMessage{Password: ""})
			require.NoError(t, fe.Flush())
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		default:
			t.Fatalf("port %d: unexpected %T", port, msg)
		}
	}
}

// configureCluster turns on TLS in the package cluster (with ca as the
// client CA) and puts authCompareHBA in front of its pg_hba.conf, until
// the test ends. It waits until a new connection sees both.
func configureCluster(t *testing.T, pg *pgserver.Cluster, ca *certs.CA, dir string) {
	t.Helper()
	ctx := context.Background()
	cert, key := ca.Issue(t, dir, "postgres-server", "localhost", "127.0.0.1")
	if os.Geteuid() == 0 { // the server runs as postgres and must read them
		u, err := user.Lookup("postgres")
		require.NoError(t, err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, f := range []string{cert, key} {
			require.NoError(t, os.Chown(f, uid, gid))
		}
	}
	hbaFile := filepath.Join(pg.DataDir, "pg_hba.conf")
	orig, err := os.ReadFile(hbaFile)
	require.NoError(t, err)

	for _, kv := range [][2]string{{"ssl_cert_file", cert}, {"ssl_key_file", key}, {"ssl_ca_file", ca.File}, {"ssl", "on"}} {
		// One statement each: ALTER SYSTEM cannot run in a transaction block.
		require.NoError(t, pg.Exec(ctx, "ALTER SYSTEM SET "+kv[0]+" = "+pgserver.QuoteLiteral(kv[1])))
	}
	require.NoError(t, pg.Exec(ctx, "SELECT pg_reload_conf()"))
	waitFor(t, "TLS on the server", func() bool {
		c, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=require", pg.Port, pgserver.Superuser, pgserver.DefaultDB))
		if err == nil {
			c.Close(ctx)
		}
		return err == nil
	})
	require.NoError(t, os.WriteFile(hbaFile, append([]byte(authCompareHBA), orig...), 0o600))
	t.Cleanup(func() {
		require.NoError(t, os.WriteFile(hbaFile, orig, 0o600))
		for _, name := range []string{"ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"} {
			require.NoError(t, pg.Exec(ctx, "ALTER SYSTEM RESET "+name))
		}
		require.NoError(t, pg.Exec(ctx, "SELECT pg_reload_conf()"))
		waitFor(t, "ssl off", func() bool {
			rows, err := pg.Query(ctx, "SHOW ssl")
			return err == nil && len(rows) == 1 && rows[0][0] == "off"
		})
	})
	require.NoError(t, pg.Exec(ctx, "SELECT pg_reload_conf()"))
	waitFor(t, "the authcmp lines in pg_hba.conf", func() bool {
		_, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=nobody dbname=authcmp_trust sslmode=disable", pg.Port))
		return err != nil && strings.Contains(err.Error(), `role "nobody" does not exist`)
	})
}

// serverReadableDir is a directory the server's user can read files from
// (t.TempDir is private to root when tests run as root).
func serverReadableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-authcmp-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

// waitFor polls cond until it holds: the server applies a reload a moment
// after pg_reload_conf returns. Only a hung server stops it: the test's
// own deadline (-timeout) bounds it during the test, and a generous
// minute in a cleanup, where t.Context() is already done.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := t.Context()
	if ctx.Err() != nil { // in a cleanup
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
	}
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
