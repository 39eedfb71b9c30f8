package pgserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// eventually polls cond every 20ms until it returns nil or the generous
// deadline passes; it then fails with cond's last error.
func eventually(t *testing.T, what string, cond func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	began := time.Now()
	var err error
	for {
		if err = cond(ctx); err == nil {
			t.Logf("%s: after %v", what, time.Since(began).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within 30s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func startPrimary(t *testing.T, parent string) *Cluster {
	t.Helper()
	p, err := Start(t.Context(), Options{Dir: parent, Settings: map[string]string{"work_mem": "7MB"}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Stop()) })
	return p
}

func startStandby(t *testing.T, p *Cluster, parent string) *Cluster {
	t.Helper()
	began := time.Now()
	s, err := p.StartStandby(t.Context(), StandbyOptions{Dir: parent})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	t.Logf("standby of port %d started in %v on port %d", p.Port, time.Since(began).Round(time.Millisecond), s.Port)
	return s
}

func queryOne(ctx context.Context, c *Cluster, sql string) (string, error) {
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", fmt.Errorf("%s: want one value, got %v", sql, rows)
	}
	return rows[0][0], nil
}

func wantValue(c *Cluster, sql, want string) func(context.Context) error {
	return func(ctx context.Context) error {
		got, err := queryOne(ctx, c, sql)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s = %q, want %q", sql, got, want)
		}
		return nil
	}
}

// TestStandbyReplicates: a standby made by StartStandby streams from the
// primary (a row inserted there becomes visible), is read-only, inherits the
// primary's settings, and pausing replay holds rows back until resumed.
func TestStandbyReplicates(t *testing.T) {
	requireBinaries(t)
	ctx := t.Context()
	parent := parentDir(t)
	p := startPrimary(t, parent)
	s := startStandby(t, p, parent)
	require.NotEqual(t, p.Port, s.Port)
	require.NotEqual(t, p.DataDir, s.DataDir)

	rec, err := s.InRecovery(ctx)
	require.NoError(t, err)
	require.True(t, rec, "standby is in recovery")
	rec, err = p.InRecovery(ctx)
	require.NoError(t, err)
	require.False(t, rec)
	for _, c := range []*Cluster{p, s} {
		tli, err := c.Timeline(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, tli)
	}
	v, err := queryOne(ctx, s, "SHOW work_mem")
	require.NoError(t, err)
	require.Equal(t, "7MB", v, "standby inherits the primary's Settings")
	v, err = queryOne(ctx, s, "SHOW port")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(s.Port), v)
	v, err = queryOne(ctx, s, "SHOW fsync")
	require.NoError(t, err)
	require.Equal(t, "off", v)

	require.NoError(t, p.Exec(ctx, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)"))
	eventually(t, "row 1 on the standby", wantValue(s, "SELECT coalesce(max(n), 0) FROM t", "1"))
	require.ErrorContains(t, s.Exec(ctx, "INSERT INTO t VALUES (2)"), "read-only")
	// The standby is also reachable over TCP, as a proxy would dial it.
	conn, err := pgconn.Connect(ctx, s.DSN(Superuser, "", DefaultDB))
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	// Paused replay: WAL keeps arriving, rows stay invisible.
	require.NoError(t, s.PauseReplay(ctx))
	require.NoError(t, p.Exec(ctx, "INSERT INTO t VALUES (2)"))
	eventually(t, "replay paused", wantValue(s, "SELECT pg_get_wal_replay_pause_state()", "paused"))
	require.NoError(t, p.Exec(ctx, "INSERT INTO t VALUES (3)"))
	lsn, err := p.CurrentLSN(ctx)
	require.NoError(t, err)
	eventually(t, "WAL received while paused",
		wantValue(s, "SELECT pg_last_wal_receive_lsn() >= '"+lsn+"'::pg_lsn", "t"))
	v, err = queryOne(ctx, s, "SELECT count(*) FROM t WHERE n = 3")
	require.NoError(t, err)
	require.Equal(t, "0", v, "row 3 was received but not replayed")
	require.NoError(t, s.ResumeReplay(ctx))
	began := time.Now()
	require.NoError(t, s.WaitReplayed(ctx, p))
	t.Logf("replayed %v after resume", time.Since(began).Round(time.Millisecond))
	v, err = queryOne(ctx, s, "SELECT string_agg(n::text, ',' ORDER BY n) FROM t")
	require.NoError(t, err)
	require.Equal(t, "1,2,3", v)
}

// TestStandbyFailover walks through what HA tests do: kill -9 the primary,
// promote one standby (it leaves recovery on a higher timeline), point the
// other at it, and bring the old primary back on its old timeline.
func TestStandbyFailover(t *testing.T) {
	requireBinaries(t)
	ctx := t.Context()
	parent := parentDir(t)
	p := startPrimary(t, parent)
	s1 := startStandby(t, p, parent)
	s2 := startStandby(t, p, parent)

	require.NoError(t, p.Exec(ctx, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)"))
	require.NoError(t, s1.WaitReplayed(ctx, p))
	require.NoError(t, s2.WaitReplayed(ctx, p))

	require.True(t, p.Running())
	require.NoError(t, p.Kill(ctx))
	require.False(t, p.Running())
	require.Error(t, p.Kill(ctx), "nothing left to kill")
	_, err := p.Query(ctx, "SELECT 1")
	require.Error(t, err, "killed primary does not answer")

	began := time.Now()
	require.NoError(t, s1.Promote(ctx))
	t.Logf("promoted in %v", time.Since(began).Round(time.Millisecond))
	rec, err := s1.InRecovery(ctx)
	require.NoError(t, err)
	require.False(t, rec, "promoted standby left recovery")
	tli, err := s1.Timeline(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, tli, "promotion starts timeline 2 at once")
	require.NoError(t, s1.Exec(ctx, "INSERT INTO t VALUES (2)"))

	// The other standby follows the new primary across the timeline switch.
	require.NoError(t, s2.Follow(ctx, s1))
	eventually(t, "row 2 on the second standby", wantValue(s2, "SELECT coalesce(max(n), 0) FROM t", "2"))
	eventually(t, "second standby on timeline 2", func(ctx context.Context) error {
		tli, err := s2.Timeline(ctx)
		if err == nil && tli != 2 {
			err = fmt.Errorf("timeline %d", tli)
		}
		return err
	})

	// The old primary comes back after crash recovery, as a primary on
	// timeline 1: exactly what a proxy must fence.
	require.NoError(t, p.Restart(ctx))
	require.True(t, p.Running())
	rec, err = p.InRecovery(ctx)
	require.NoError(t, err)
	require.False(t, rec)
	tli, err = p.Timeline(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, tli)
	v, err := queryOne(ctx, p, "SELECT count(*) FROM t")
	require.NoError(t, err)
	require.Equal(t, "1", v, "the old primary never saw row 2")

	// Shutdown keeps the data; Restart brings a standby back as a standby.
	port := s2.Port
	require.NoError(t, s2.Shutdown(ctx))
	require.False(t, s2.Running())
	require.NoError(t, s2.Shutdown(ctx), "Shutdown of a stopped server is a no-op")
	require.NoError(t, s2.Restart(ctx))
	require.Equal(t, port, s2.Port, "same port after Restart")
	rec, err = s2.InRecovery(ctx)
	require.NoError(t, err)
	require.True(t, rec)
	require.NoError(t, s1.Exec(ctx, "INSERT INTO t VALUES (3)"))
	eventually(t, "row 3 on the restarted standby", wantValue(s2, "SELECT coalesce(max(n), 0) FROM t", "3"))

	// Stop after Kill: nothing to shut down, the directory goes.
	require.NoError(t, s2.Kill(ctx))
	require.NoError(t, s2.Stop())
}
