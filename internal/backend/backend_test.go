package backend_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func opts(t *testing.T, user, password string) backend.Options {
	c := pgtest.Cluster(t)
	return backend.Options{
		Network: "tcp", Address: fmt.Sprintf("127.0.0.1:%d", c.Port), Display: fmt.Sprintf("127.0.0.1:%d", c.Port),
		User: user, Password: password, Database: pgtest.AppDB, DialTimeout: 10 * time.Second,
	}
}

func dial(t *testing.T, o backend.Options) *backend.Conn {
	t.Helper()
	c, err := backend.Dial(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialLogsInWithSCRAMAndMD5(t *testing.T) {
	for _, u := range [][2]string{{pgtest.AppUser, pgtest.AppPassword}, {pgtest.MD5User, pgtest.MD5Password}} {
		c := dial(t, opts(t, u[0], u[1]))
		require.NotZero(t, c.PID)
		require.Len(t, c.Secret, 4)
		require.NotEmpty(t, c.Params["server_version"])
		require.True(t, c.Alive())
	}
}

func TestWrongServerPasswordIsNotRetried(t *testing.T) {
	o := opts(t, pgtest.AppUser, "wrong")
	o.Retries = 3
	attempts := 0
	o.Attempted = func(error) { attempts++ }
	_, err := backend.Dial(context.Background(), o)
	var se *backend.ServerError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "28P01", se.Response.Code)
	require.Equal(t, 1, attempts)
}

func TestDialRetriesWithBackoffThenReportsAttempts(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	synctest.Test(t, func(t *testing.T) {
		var logs strings.Builder
		b := config.Backend{Retries: 3, Backoff: config.Duration(time.Second), BackoffMultiplier: 2}
		o := backend.Options{Network: "tcp", Address: addr, Display: addr, User: "app", Database: "appdb",
			Retries: b.EffectiveRetries(), Wait: b.Wait, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		start := time.Now()
		_, err := backend.Dial(context.Background(), o)
		var ce *backend.ConnectError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, 4, ce.Attempts)
		require.Contains(t, err.Error(), addr)
		require.Equal(t, 7*time.Second, time.Since(start), "waits of 1s, 2s and 4s, none after the last attempt")
		for i, wait := range []string{"1s", "2s", "4s"} {
			require.Contains(t, logs.String(), fmt.Sprintf("attempt=%d of=4", i+1))
			require.Contains(t, logs.String(), "next_wait="+wait)
		}
	})
}

// The caps (60s per wait, 10 retries) and the uncapped series, in virtual
// time: the total wait and the number of attempts tell the whole schedule.
func TestDialBackoffCapsAndUncappedSeries(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		uncapped bool
		attempts int
		total    time.Duration
	}{
		{false, 11, (1 + 2 + 4 + 8 + 16 + 32 + 60 + 60 + 60 + 60) * time.Second},
		{true, 12, (1 + 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 512 + 1024) * time.Second},
	} {
		synctest.Test(t, func(t *testing.T) {
			b := config.Backend{Retries: 11, Backoff: config.Duration(time.Second), BackoffMultiplier: 2, DisableBackoffCaps: tc.uncapped}
			o := backend.Options{Network: "tcp", Address: addr, Display: addr, User: "app", Database: "appdb",
				Retries: b.EffectiveRetries(), Wait: b.Wait}
			start := time.Now()
			_, err := backend.Dial(context.Background(), o)
			var ce *backend.ConnectError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.attempts, ce.Attempts, "uncapped=%v", tc.uncapped)
			require.Equal(t, tc.total, time.Since(start), "uncapped=%v", tc.uncapped)
		})
	}
}

func TestApplyAndReset(t *testing.T) {
	c := dial(t, opts(t, pgtest.AppUser, pgtest.AppPassword))
	ctx := context.Background()
	require.NoError(t, c.Apply(ctx, []backend.Setting{{Name: "application_name", Value: "it's"}, {Name: "DateStyle", Value: "SQL, DMY"}}))
	require.Equal(t, "it's", c.Params["application_name"])
	require.Equal(t, "SQL, DMY", c.Params["DateStyle"])

	err := c.Apply(ctx, []backend.Setting{{Name: "DateStyle", Value: "nonsense"}})
	var se *backend.ServerError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "22023", se.Response.Code)

	require.NoError(t, c.Reset(ctx, 'I'))
	require.Equal(t, "", c.Params["application_name"], "DISCARD ALL resets reported parameters and sluice sees it")
	require.Equal(t, "ISO, MDY", c.Params["DateStyle"])
	require.True(t, c.Alive())
}

func TestAliveNoticesATerminatedBackend(t *testing.T) {
	c := dial(t, opts(t, pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, pgtest.Cluster(t).Exec(context.Background(), fmt.Sprintf("SELECT pg_terminate_backend(%d)", c.PID)))
	require.Eventually(t, func() bool { return !c.Alive() }, 10*time.Second, 10*time.Millisecond)
}

func TestCancelStopsARunningQuery(t *testing.T) {
	c := dial(t, opts(t, pgtest.AppUser, pgtest.AppPassword))
	o := opts(t, pgtest.AppUser, pgtest.AppPassword)
	done := make(chan error, 1)
	go func() {
		// Cancel once the query is visibly running.
		for {
			rows, err := pgtest.Cluster(t).Query(context.Background(), fmt.Sprintf("SELECT state FROM pg_stat_activity WHERE pid = %d", c.PID))
			if err != nil {
				done <- err
				return
			}
			if len(rows) == 1 && rows[0][0] == "active" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		done <- backend.Cancel(context.Background(), o.Network, o.Address, c.PID, c.Secret)
	}()
	require.NoError(t, c.Send(&pgproto3.Query{String: "SELECT pg_sleep(30)"}))
	var code string
	for {
		msg, err := c.Receive()
		require.NoError(t, err)
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			code = e.Code
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	require.NoError(t, <-done)
	require.Equal(t, "57014", code)
}

// ResetFor leaves the connection configured like the session that ended,
// so the next session with the same settings costs no round trip.
func TestResetForReappliesSettings(t *testing.T) {
	c := dial(t, opts(t, pgtest.AppUser, pgtest.AppPassword))
	ctx := context.Background()
	lastQuery := func() string {
		rows, err := pgtest.Cluster(t).Query(ctx, fmt.Sprintf("SELECT query FROM pg_stat_activity WHERE pid = %d", c.PID))
		require.NoError(t, err)
		return rows[0][0]
	}
	next := []backend.Setting{{Name: "application_name", Value: "reset-for"}, {Name: "search_path", Value: "x, public"}}
	require.NoError(t, c.Apply(ctx, []backend.Setting{{Name: "search_path", Value: "y"}}))
	require.NoError(t, c.ResetFor(ctx, 'I', next))
	require.Equal(t, "reset-for", c.Params["application_name"])
	after := lastQuery()
	require.Contains(t, after, "set_config")

	require.NoError(t, c.Apply(ctx, next))
	require.Equal(t, after, lastQuery(), "the same settings again: nothing sent")

	require.NoError(t, c.Apply(ctx, []backend.Setting{{Name: "search_path", Value: "z"}}))
	require.NotEqual(t, after, lastQuery(), "a different value is sent")
	require.NoError(t, c.Reset(ctx, 'I'))
	require.Equal(t, "", c.Params["application_name"])
}

// A setting ResetFor kept from the previous session does not leak to a
// next session that does not ask for it (a read-only session's
// default_transaction_read_only must not reach a read-write one).
func TestApplyResetsSettingsOfThePreviousSession(t *testing.T) {
	c := dial(t, opts(t, pgtest.AppUser, pgtest.AppPassword))
	ctx := context.Background()
	prev := []backend.Setting{{Name: "default_transaction_read_only", Value: "on"}, {Name: "application_name", Value: "ro"}}
	require.NoError(t, c.Apply(ctx, prev))
	require.NoError(t, c.ResetFor(ctx, 'I', prev))
	require.Equal(t, "on", c.Params["default_transaction_read_only"])

	require.NoError(t, c.Apply(ctx, []backend.Setting{{Name: "Application_Name", Value: "rw"}}))
	require.Equal(t, "off", c.Params["default_transaction_read_only"])
	require.Equal(t, "rw", c.Params["application_name"])
	rows, err := pgtest.Cluster(t).Query(ctx, fmt.Sprintf("SELECT application_name FROM pg_stat_activity WHERE pid = %d", c.PID))
	require.NoError(t, err)
	require.Equal(t, "rw", rows[0][0])

	require.NoError(t, c.ResetFor(ctx, 'I', nil))
	require.NoError(t, c.Apply(ctx, nil))
	require.Equal(t, "", c.Params["application_name"])
}
