package proxy_test

import (
	"context"
	"fmt"
	"github.com/sluice-proxy/sluice/internal/testutil/sluicetest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// harness is one sluice in front of the package's PostgreSQL.
type harness struct {
	t    *testing.T
	srv  *proxy.Server
	port int
	sock string // socket dir
	logs *syncbuf.Buffer
	cfg  *config.Config
}

// configText renders a config for the test cluster; extra is appended
// under the appdb database entry (indented 4 spaces), pool under pool:.
func configText(t *testing.T, sockDir string, poolYAML string, extraUsers string) string {
	c := pgtest.Cluster(t)
	if poolYAML == "" {
		poolYAML = "min_size: 1\n      max_size: 60"
	}
	return fmt.Sprintf(`listen:
  address: 127.0.0.1:0
  socket_dir: %s
admin:
  address: ""
shutdown_timeout: 5s
users:
  - name: %s
    password: %s
  - name: %s
    password: %s
    auth_method: md5
%s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool:
      %s
`, sockDir, pgtest.AppUser, pgtest.AppPassword, pgtest.MD5User, pgtest.MD5Password, extraUsers, pgtest.AppDB, c.Port, poolYAML)
}

func start(t *testing.T, poolYAML string) *harness {
	t.Helper()
	return startWith(t, poolYAML, "")
}

// startWith also takes extra YAML appended at the top level.
func startWith(t *testing.T, poolYAML, topLevel string) *harness {
	t.Helper()
	sock := t.TempDir()
	if !strings.Contains(topLevel, "log:") {
		topLevel += "log:\n  level: debug\n"
	}
	return startConfig(t, sock, configText(t, sock, poolYAML, "")+topLevel)
}

// startConfig starts sluice from a whole config text; sock is its
// socket_dir. No environment variable is set for ${VAR} in passwords, so
// the tests do not depend on the environment they run in.
func startConfig(t *testing.T, sock, text string) *harness {
	t.Helper()
	return startConfigEnv(t, sock, text, sluicetest.NoEnv)
}

// startConfigEnv is startConfig with lookupEnv for ${VAR} in passwords.
func startConfigEnv(t *testing.T, sock, text string, lookupEnv func(string) (string, bool)) *harness {
	t.Helper()
	srv, cfg, logs := sluicetest.Start(t, text, lookupEnv)
	return &harness{t: t, srv: srv, port: srv.Addr().(*net.TCPAddr).Port, sock: sock, logs: logs, cfg: cfg}
}

func (h *harness) dsn(user, password string, extra ...string) string {
	s := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", h.port, user, password, pgtest.AppDB)
	for _, e := range extra {
		s += " " + e
	}
	return s
}

func (h *harness) connect(ctx context.Context, extra ...string) *pgconn.PgConn {
	h.t.Helper()
	c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword, extra...))
	require.NoError(h.t, err)
	h.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// query runs sql and returns the first column of every row.
func query(t *testing.T, c *pgconn.PgConn, sql string) []string {
	t.Helper()
	res := c.ExecParams(context.Background(), sql, nil, nil, nil, nil).Read()
	require.NoError(t, res.Err, sql)
	var out []string
	for _, r := range res.Rows {
		out = append(out, string(r[0]))
	}
	return out
}

// psql runs psql with args and PGPASSWORD, returning combined output.
func psql(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("psql", append([]string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
