// Package pgtest gives each test package one throwaway PostgreSQL cluster
// with standard fixtures, started and stopped by the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Fixtures: role AppUser (SCRAM-stored password) owning database AppDB, role
// MD5User (MD5-stored password) allowed into AppDB, and pgbench tables at
// scale 1 in AppDB (owned by AppUser, all privileges to MD5User), so tests
// can run `pgbench -S` and `pgbench -N` directly or through the proxy.
//
// Missing PostgreSQL binaries make Main fail loudly; SLUICE_SKIP_PG=1 skips
// every test that calls Cluster instead of starting a server.
package pgtest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// Fixture roles and database created by Main.
const (
	AppUser     = "app"
	AppPassword = "app_pw"
	MD5User     = "md5user"
	MD5Password = "md5_pw"
	AppDB       = "appdb"
)

// SkipEnv set to "1" makes Main start no cluster and Cluster skip the test.
const SkipEnv = "SLUICE_SKIP_PG"

// setupTimeout bounds cluster start plus fixtures (pgbench -i takes ~1s).
const setupTimeout = 3 * time.Minute

// state is what Main leaves for Cluster; a struct so tests can drive Main's
// logic without touching the package's real cluster.
type state struct {
	used    bool
	skip    string
	cluster *pgserver.Cluster
}

// pkg is written by Main before m.Run and only read afterwards by tests.
var pkg state

// runner is the part of *testing.M that Main needs.
type runner interface{ Run() int }

// env is the environment Main depends on, swappable in tests.
type env struct {
	getenv    func(string) string
	findBin   func() (string, error)
	start     func(context.Context) (*pgserver.Cluster, error)
	leakCheck func() error
	stderr    io.Writer
	verbose   func() bool
}

// Main starts the package's cluster, creates the fixtures, runs the tests,
// stops the cluster and then fails the run if goroutines leaked (goleak.Find
// with opts). It returns the exit code for os.Exit.
func Main(m *testing.M, opts ...goleak.Option) int {
	return run(&pkg, m, env{
		getenv:  os.Getenv,
		findBin: pgserver.FindBinDir,
		start: func(ctx context.Context) (*pgserver.Cluster, error) {
			return pgserver.Start(ctx, pgserver.Options{Log: os.Stderr})
		},
		leakCheck: func() error { return goleak.Find(opts...) },
		stderr:    os.Stderr,
		verbose: func() bool {
			if !flag.Parsed() {
				flag.Parse()
			}
			return testing.Verbose()
		},
	})
}

func run(st *state, m runner, e env) int {
	st.used = true
	if v := e.getenv(SkipEnv); v == "1" {
		st.skip = SkipEnv + "=1: PostgreSQL integration tests skipped"
		return finish(m.Run(), e)
	}
	if _, err := e.findBin(); err != nil {
		fmt.Fprintf(e.stderr, "pgtest: %v\npgtest: set %s=1 to skip PostgreSQL integration tests instead\n", err, SkipEnv)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	began := time.Now()
	c, err := e.start(ctx)
	if err != nil {
		cancel()
		fmt.Fprintf(e.stderr, "pgtest: starting PostgreSQL: %v\n", err)
		return 1
	}
	started := time.Since(began)
	err = createFixtures(ctx, c)
	cancel()
	if err != nil {
		fmt.Fprintf(e.stderr, "pgtest: creating fixtures: %v\n", err)
		_ = c.Stop()
		return 1
	}
	if e.verbose() {
		fmt.Fprintf(e.stderr, "pgtest: cluster on port %d started in %v, fixtures in %v\n",
			c.Port, started.Round(time.Millisecond), (time.Since(began) - started).Round(time.Millisecond))
	}
	st.cluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(e.stderr, "pgtest: stopping PostgreSQL: %v\n", err)
		code = failed(code)
	}
	return finish(code, e)
}

// finish runs the leak check after the tests (and after Stop, whose
// commands must be gone too).
func finish(code int, e env) int {
	if err := e.leakCheck(); err != nil {
		fmt.Fprintf(e.stderr, "pgtest: goroutine leak after tests: %v\n", err)
		return failed(code)
	}
	return code
}

func failed(code int) int {
	if code == 0 {
		return 1
	}
	return code
}

// Cluster returns the package's cluster. It fails the test if TestMain did
// not call Main, and skips it under SLUICE_SKIP_PG=1.
func Cluster(t testing.TB) *pgserver.Cluster {
	t.Helper()
	return pkg.get(t)
}

func (st *state) get(t testing.TB) *pgserver.Cluster {
	t.Helper()
	switch {
	case !st.used:
		t.Fatal("pgtest.Cluster: this package's TestMain must call pgtest.Main: func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }")
		return nil
	case st.skip != "":
		t.Skip(st.skip)
		return nil
	}
	return st.cluster
}
