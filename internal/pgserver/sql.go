package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the cluster's trusted superuser role; DefaultDB is the
// database Exec and Query use.
const (
	Superuser = "postgres"
	DefaultDB = "postgres"
)

// DSN returns a libpq keyword/value string for a TCP connection to the
// cluster, e.g. "host=127.0.0.1 port=N user=u password=p dbname=d sslmode=disable".
// An empty password is omitted; values with spaces or quotes are quoted.
func (c *Cluster) DSN(user, password, dbname string) string {
	parts := []string{kv("host", c.Host), kv("port", strconv.Itoa(c.Port)), kv("user", user)}
	if password != "" {
		parts = append(parts, kv("password", password))
	}
	parts = append(parts, kv("dbname", dbname), "sslmode=disable")
	return strings.Join(parts, " ")
}

// kv renders one libpq keyword=value pair, quoting when needed.
func kv(k, v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\\") {
		return k + "=" + v
	}
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `'`, `\'`)
	return k + "='" + v + "'"
}

// connect opens a superuser connection over the unix socket. The caller
// closes it.
func (c *Cluster) connect(ctx context.Context, dbname string) (*pgconn.PgConn, error) {
	conn, err := pgconn.Connect(ctx, strings.Join([]string{
		kv("host", c.SocketDir), kv("port", strconv.Itoa(c.Port)),
		kv("user", Superuser), kv("dbname", dbname), "sslmode=disable",
	}, " "))
	if err != nil {
		return nil, fmt.Errorf("pgserver: connecting as %s: %w", Superuser, err)
	}
	return conn, nil
}

// Exec runs sql (one or more statements, simple protocol) as the superuser
// in database "postgres".
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	_, err := c.QueryDB(ctx, DefaultDB, sql)
	return err
}

// ExecDB is Exec in database dbname.
func (c *Cluster) ExecDB(ctx context.Context, dbname, sql string) error {
	_, err := c.QueryDB(ctx, dbname, sql)
	return err
}

// Query runs sql as the superuser in database "postgres" and returns the rows
// of all its statements, in order, as text (NULL becomes "").
func (c *Cluster) Query(ctx context.Context, sql string) ([][]string, error) {
	return c.QueryDB(ctx, DefaultDB, sql)
}

// QueryDB is Query in database dbname.
func (c *Cluster) QueryDB(ctx context.Context, dbname, sql string) ([][]string, error) {
	conn, err := c.connect(ctx, dbname)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("pgserver: %s: %w", abbreviate(sql), err)
	}
	var rows [][]string
	for _, r := range results {
		for _, row := range r.Rows {
			out := make([]string, len(row))
			for i, v := range row {
				out[i] = string(v)
			}
			rows = append(rows, out)
		}
	}
	return rows, nil
}

func abbreviate(sql string) string {
	sql = strings.Join(strings.Fields(sql), " ")
	if len(sql) > 80 {
		return sql[:77] + "..."
	}
	return sql
}

// CreateRole creates (or, if it exists, updates) a LOGIN role whose password
// is stored with method "scram-sha-256" or "md5". The pg_hba "md5" lines then
// authenticate it with SCRAM or MD5 respectively.
func (c *Cluster) CreateRole(ctx context.Context, name, password, method string) error {
	if method != "scram-sha-256" && method != "md5" {
		return fmt.Errorf("pgserver: CreateRole %s: method must be scram-sha-256 or md5, not %q", name, method)
	}
	verb := "CREATE"
	rows, err := c.Query(ctx, "SELECT 1 FROM pg_roles WHERE rolname = "+QuoteLiteral(name))
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		verb = "ALTER"
	}
	// One session: password_encryption must be set where the password is hashed.
	return c.Exec(ctx, fmt.Sprintf("SET password_encryption = %s; %s ROLE %s LOGIN PASSWORD %s",
		QuoteLiteral(method), verb, QuoteIdent(name), QuoteLiteral(password)))
}

// CreateDatabase creates database name owned by owner; if it already exists
// only its owner is set.
func (c *Cluster) CreateDatabase(ctx context.Context, name, owner string) error {
	rows, err := c.Query(ctx, "SELECT 1 FROM pg_database WHERE datname = "+QuoteLiteral(name))
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		return c.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", QuoteIdent(name), QuoteIdent(owner)))
	}
	return c.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", QuoteIdent(name), QuoteIdent(owner)))
}

// Pgbench runs pgbench (from BinDir, else $PATH) as the invoking OS user and
// returns its combined output. PGHOST/PGPORT/PGUSER default to this
// cluster's socket and superuser; command-line args (-h, -p, -U, dbname)
// override them, e.g. to aim pgbench at a proxy.
func (c *Cluster) Pgbench(ctx context.Context, args ...string) ([]byte, error) {
	return c.PgbenchEnv(ctx, nil, args...)
}

// PgbenchEnv is Pgbench with extra "KEY=value" environment entries (e.g.
// PGPASSWORD), which override the defaults.
func (c *Cluster) PgbenchEnv(ctx context.Context, env []string, args ...string) ([]byte, error) {
	bin := filepath.Join(c.BinDir, "pgbench")
	if !isExecutable(bin) {
		p, err := exec.LookPath("pgbench")
		if err != nil {
			return nil, fmt.Errorf("pgserver: pgbench not found in %s or $PATH (apt-get install -y postgresql): %w", c.BinDir, err)
		}
		bin = p
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PGHOST="+c.SocketDir, "PGPORT="+strconv.Itoa(c.Port), "PGUSER="+Superuser, "LC_ALL=C")
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = waitDelay
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = errors.Join(err, ctxErr)
		}
		return out.Bytes(), fmt.Errorf("pgserver: pgbench %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// QuoteIdent quotes an SQL identifier ("a""b").
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), `"`, `""`) + `"`
}

// QuoteLiteral quotes an SQL string literal, assuming
// standard_conforming_strings=on (the default since 9.1).
func QuoteLiteral(s string) string {
	return `'` + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), `'`, `''`) + `'`
}
