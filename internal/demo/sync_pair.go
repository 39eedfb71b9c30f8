package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// startSyncPair starts a throwaway primary with the demo fixtures and a
// streaming standby of it made synchronous, so that every acknowledged
// commit survives the primary's death. stop stops and removes both (the
// caller owns it and must call it once).
func startSyncPair(ctx context.Context, out io.Writer) (primary, standby *pgserver.Cluster, stop func() error, err error) {
	fmt.Fprintln(out, "starting a throwaway PostgreSQL primary ...")
	primary, err = pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return nil, nil, nil, err
	}
	stopPrimary := func() error {
		err := primary.Stop()
		fmt.Fprintln(out, "demo PostgreSQL primary stopped and removed")
		return err
	}
	if err := failoverFixtures(ctx, primary); err != nil {
		return nil, nil, nil, errors.Join(err, stopPrimary())
	}
	fmt.Fprintln(out, "starting a streaming standby of it (pg_basebackup -R) ...")
	standby, err = primary.StartStandby(ctx, pgserver.StandbyOptions{})
	if err != nil {
		return nil, nil, nil, errors.Join(err, stopPrimary())
	}
	stop = func() error {
		err := standby.Stop()
		fmt.Fprintln(out, "demo PostgreSQL standby stopped and removed")
		return errors.Join(err, stopPrimary())
	}
	if err := standby.WaitReplayed(ctx, primary); err != nil {
		return nil, nil, nil, errors.Join(err, stop())
	}
	if err := makeSynchronous(ctx, primary); err != nil {
		return nil, nil, nil, errors.Join(err, stop())
	}
	return primary, standby, stop, nil
}

// checkWrites compares the writer's record with the rows on the new
// primary: acknowledged numbers missing (lost) or present more than once
// (twice), and how many failed writes committed anyway.
func checkWrites(ctx context.Context, newPrimary *pgserver.Cluster, p progress) (lost, twice, failedPresent int, err error) {
	rows, err := newPrimary.QueryDB(ctx, demoDB, "SELECT n FROM writes ORDER BY n")
	if err != nil {
		return 0, 0, 0, err
	}
	have := map[int]int{}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[0])
		have[n]++
	}
	for _, a := range p.acks {
		switch have[a.n] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
	}
	for _, n := range p.failed {
		if have[n] > 0 {
			failedPresent++
		}
	}
	return lost, twice, failedPresent, nil
}

func failoverFixtures(ctx context.Context, c *pgserver.Cluster) error {
	if err := c.CreateRole(ctx, demoUser, demoPassword, "scram-sha-256"); err != nil {
		return err
	}
	if err := c.CreateRole(ctx, monitorUser, monitorPassword, "scram-sha-256"); err != nil {
		return err
	}
	if err := c.CreateDatabase(ctx, demoDB, demoUser); err != nil {
		return err
	}
	mon := pgserver.QuoteIdent(monitorUser)
	// What failover.user needs: pg_monitor and EXECUTE on pg_promote (a
	// function privilege lives in each database's catalog).
	if err := c.Exec(ctx, "GRANT pg_monitor TO "+mon); err != nil {
		return err
	}
	for _, db := range []string{pgserver.DefaultDB, demoDB} {
		if err := c.ExecDB(ctx, db, "GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO "+mon); err != nil {
			return err
		}
	}
	return c.ExecDB(ctx, demoDB, "CREATE TABLE writes (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());"+
		"ALTER TABLE writes OWNER TO "+pgserver.QuoteIdent(demoUser))
}

// makeSynchronous turns on synchronous replication on c and waits until
// its standby is the synchronous one.
func makeSynchronous(ctx context.Context, c *pgserver.Cluster) error {
	// One statement per round trip: ALTER SYSTEM refuses a multi-statement query.
	for _, q := range []string{"ALTER SYSTEM SET synchronous_standby_names = '*'",
		"ALTER SYSTEM SET synchronous_commit = 'on'", "SELECT pg_catalog.pg_reload_conf()"} {
		if err := c.Exec(ctx, q); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, err := c.Query(ctx, "SELECT count(*) FROM pg_catalog.pg_stat_replication WHERE sync_state = 'sync'")
		if err != nil {
			return err
		}
		if rows[0][0] == "1" {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("demo: the standby never became synchronous")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
