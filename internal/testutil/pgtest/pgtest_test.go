package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/pgserver"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestFixtureLogins(t *testing.T) {
	c := Cluster(t)
	ctx := t.Context()
	for _, tc := range []struct{ user, pw, stored string }{
		{AppUser, AppPassword, "SCRAM-SHA-256$"},
		{MD5User, MD5Password, "md5"},
	} {
		conn, err := pgconn.Connect(ctx, c.DSN(tc.user, tc.pw, AppDB))
		require.NoError(t, err, tc.user)
		res, err := conn.Exec(ctx, "SELECT current_user, count(*) FROM pgbench_accounts").ReadAll()
		require.NoError(t, err, tc.user)
		require.Equal(t, []string{tc.user, "100000"}, []string{string(res[0].Rows[0][0]), string(res[0].Rows[0][1])})
		require.NoError(t, conn.Close(ctx))

		rows, err := c.Query(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = "+pgserver.QuoteLiteral(tc.user))
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(rows[0][0], tc.stored), "%s stored as %.14s", tc.user, rows[0][0])
	}
	rows, err := c.Query(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "+pgserver.QuoteLiteral(AppDB))
	require.NoError(t, err)
	require.Equal(t, [][]string{{AppUser}}, rows)
}

// TestPgbenchWorkloads runs the workloads behaviour tests rely on, over TCP
// with password auth, as each fixture role.
func TestPgbenchWorkloads(t *testing.T) {
	c := Cluster(t)
	for _, tc := range []struct{ user, pw, mode string }{
		{AppUser, AppPassword, "-S"},
		{AppUser, AppPassword, "-N"},
		{MD5User, MD5Password, "-S"},
		{MD5User, MD5Password, "-N"},
	} {
		t.Run(tc.user+tc.mode, func(t *testing.T) {
			out, err := c.PgbenchEnv(t.Context(), []string{"PGPASSWORD=" + tc.pw},
				tc.mode, "-c", "2", "-t", "10", "-h", c.Host, "-p", strconv.Itoa(c.Port), "-U", tc.user, AppDB)
			require.NoError(t, err)
			require.Contains(t, string(out), "number of transactions actually processed: 20/20")
		})
	}
}

// fakeTB records Fatal/Skip instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }
func (f *fakeTB) Skip(args ...any)  { f.skip = fmt.Sprint(args...) }

type fakeRunner struct {
	ran  bool
	code int
}

func (r *fakeRunner) Run() int { r.ran = true; return r.code }

func fakeEnv(stderr *strings.Builder) env {
	return env{
		getenv:    func(string) string { return "" },
		findBin:   func() (string, error) { return "/usr/lib/postgresql/15/bin", nil },
		start:     func(context.Context) (*pgserver.Cluster, error) { return nil, errors.New("no start in fake env") },
		leakCheck: func() error { return nil },
		stderr:    stderr,
		verbose:   func() bool { return false },
	}
}

func TestClusterWithoutMain(t *testing.T) {
	var st state
	tb := &fakeTB{}
	require.Nil(t, st.get(tb))
	require.Contains(t, tb.fatal, "must call pgtest.Main")
	require.Empty(t, tb.skip)
}

func TestMainMissingBinariesFailsLoudly(t *testing.T) {
	var st state
	var stderr strings.Builder
	e := fakeEnv(&stderr)
	e.findBin = func() (string, error) {
		return "", errors.New("pgserver: PostgreSQL server binaries not found; install them with: apt-get install -y postgresql")
	}
	r := &fakeRunner{}
	require.Equal(t, 1, run(&st, r, e))
	require.False(t, r.ran, "tests must not run without a server")
	require.Contains(t, stderr.String(), "apt-get install -y postgresql")
	require.Contains(t, stderr.String(), SkipEnv+"=1")
}

func TestMainSkipEnv(t *testing.T) {
	var st state
	var stderr strings.Builder
	e := fakeEnv(&stderr)
	e.getenv = func(k string) string {
		if k == SkipEnv {
			return "1"
		}
		return ""
	}
	e.findBin = func() (string, error) { return "", errors.New("missing") }
	r := &fakeRunner{}
	require.Equal(t, 0, run(&st, r, e))
	require.True(t, r.ran)
	tb := &fakeTB{}
	require.Nil(t, st.get(tb))
	require.Contains(t, tb.skip, SkipEnv)
	require.Empty(t, tb.fatal)
}

func TestMainStartFailure(t *testing.T) {
	var st state
	var stderr strings.Builder
	r := &fakeRunner{}
	require.Equal(t, 1, run(&st, r, fakeEnv(&stderr)))
	require.False(t, r.ran)
	require.Contains(t, stderr.String(), "no start in fake env")
}

func TestMainLeakFailsRun(t *testing.T) {
	var st state
	var stderr strings.Builder
	e := fakeEnv(&stderr)
	e.getenv = func(string) string { return "1" }
	e.leakCheck = func() error { return errors.New("found unexpected goroutines") }
	require.Equal(t, 1, run(&st, &fakeRunner{}, e), "leak turns success into failure")
	require.Equal(t, 3, run(&st, &fakeRunner{code: 3}, e), "a failing code is kept")
	require.Contains(t, stderr.String(), "goroutine leak")
}
