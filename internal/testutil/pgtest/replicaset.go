package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// Monitoring role created on a replica set's primary (and so present on
// its standbys): what failover.user needs, pg_monitor plus EXECUTE on
// pg_promote, and no more.
const (
	MonitorUser     = "monitor"
	MonitorPassword = "monitor_pw"
)

// Set is a primary and its streaming standbys, each a *pgserver.Cluster on
// its own free port. Tests may kill, promote and restart any of them.
type Set struct {
	Primary  *pgserver.Cluster
	Standbys []*pgserver.Cluster
}

// All returns the primary followed by the standbys.
func (s *Set) All() []*pgserver.Cluster {
	return append([]*pgserver.Cluster{s.Primary}, s.Standbys...)
}

// Stop stops every server of the set and removes their directories.
func (s *Set) Stop() error {
	var errs []error
	for _, c := range s.All() {
		if c != nil {
			errs = append(errs, c.Stop())
		}
	}
	return errors.Join(errs...)
}

// StartReplicaSet starts a fresh primary with the fixture roles and
// database (AppUser, MD5User, AppDB, but no pgbench tables), plus
// MonitorUser, and then n streaming standbys of it (pg_basebackup -R). A
// TestMain can call it to share one set across a package; ReplicaSet gives a
// test its own. On error nothing is left running.
func StartReplicaSet(ctx context.Context, n int, opts pgserver.Options) (*Set, error) {
	p, err := pgserver.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	s := &Set{Primary: p}
	if err := createReplicaFixtures(ctx, p); err != nil {
		return nil, errors.Join(fmt.Errorf("pgtest: replica set fixtures: %w", err), s.Stop())
	}
	for range n {
		st, err := p.StartStandby(ctx, pgserver.StandbyOptions{Dir: opts.Dir, Log: opts.Log, StartTimeout: opts.StartTimeout})
		if err != nil {
			return nil, errors.Join(err, s.Stop())
		}
		s.Standbys = append(s.Standbys, st)
	}
	// Every standby has replayed the fixtures before anyone looks.
	for _, st := range s.Standbys {
		if err := st.WaitReplayed(ctx, p); err != nil {
			return nil, errors.Join(err, s.Stop())
		}
	}
	return s, nil
}

func createReplicaFixtures(ctx context.Context, c *pgserver.Cluster) error {
	if err := c.CreateRole(ctx, AppUser, AppPassword, "scram-sha-256"); err != nil {
		return err
	}
	if err := c.CreateRole(ctx, MD5User, MD5Password, "md5"); err != nil {
		return err
	}
	if err := c.CreateRole(ctx, MonitorUser, MonitorPassword, "scram-sha-256"); err != nil {
		return err
	}
	if err := c.CreateDatabase(ctx, AppDB, AppUser); err != nil {
		return err
	}
	mon := pgserver.QuoteIdent(MonitorUser)
	if err := c.Exec(ctx, "GRANT pg_monitor TO "+mon+";\n"+
		"GRANT CONNECT, TEMPORARY ON DATABASE "+pgserver.QuoteIdent(AppDB)+" TO "+pgserver.QuoteIdent(MD5User)); err != nil {
		return err
	}
	// Function privileges live in each database's catalog.
	for _, db := range []string{pgserver.DefaultDB, AppDB} {
		if err := c.ExecDB(ctx, db, "GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO "+mon); err != nil {
			return err
		}
	}
	return nil
}

// ReplicaSet starts a primary with n standbys for this test alone (see
// StartReplicaSet) and stops them when the test ends. It does not need
// pgtest.Main: it skips the test under SLUICE_SKIP_PG=1 itself and fails it
// if the server binaries are missing. A set of a primary and two standbys
// takes about two seconds to start.
func ReplicaSet(t testing.TB, n int) *Set {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skip(SkipEnv + "=1: PostgreSQL integration tests skipped")
	}
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	s, err := StartReplicaSet(ctx, n, pgserver.Options{Log: os.Stderr})
	if err != nil {
		t.Fatalf("pgtest.ReplicaSet: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("pgtest.ReplicaSet: stopping: %v", err)
		}
	})
	return s
}
