package backend_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
)

// downOptions reach a server that is not there: a Unix socket path that
// does not exist fails every attempt at once, with no network involved,
// so the attempts follow the (virtual) clock exactly.
func downOptions(t *testing.T, retries int) backend.Options {
	b := config.Backend{Retries: retries, Backoff: config.Duration(time.Second), BackoffMultiplier: 2}
	path := filepath.Join(t.TempDir(), ".s.PGSQL.5432")
	return backend.Options{Network: "unix", Address: path, Display: path, User: "u", Database: "d",
		Retries: b.EffectiveRetries(), Wait: b.Wait}
}

// With a deadline (a client waiting up to its borrow_timeout), Dial keeps
// trying past backend.retries until the deadline, with the schedule's last
// wait between the later attempts, and reports the server's error, not the
// deadline's. Today's main gave up after retries+1 attempts (3s here).
func TestDialWithDeadlineKeepsTryingUntilIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := downOptions(t, 2) // waits 1s, 2s, then 2s each
		var at []time.Duration
		start := time.Now()
		o.Attempted = func(error) { at = append(at, time.Since(start)) }
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := backend.Dial(ctx, o)
		var ce *backend.ConnectError
		require.ErrorAs(t, err, &ce)
		require.True(t, ce.TimedOut)
		require.ErrorIs(t, err, syscall.ENOENT, "the server's error, not the deadline's")
		require.NotErrorIs(t, err, context.DeadlineExceeded)
		want := []time.Duration{0, time.Second}
		for s := 3; s < 30; s += 2 {
			want = append(want, time.Duration(s)*time.Second)
		}
		require.Equal(t, want, at)
		require.Equal(t, len(want), ce.Attempts)
		require.Equal(t, 30*time.Second, time.Since(start), "it stops at the deadline, not after the next wait")
	})
}

// Without a deadline (pool maintenance), and with retries: 0 even with
// one, the retry limit holds.
func TestDialWithoutDeadlineStopsAfterRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, c := range []struct {
			retries  int
			deadline bool
			attempts int
		}{{2, false, 3}, {0, true, 1}, {0, false, 1}} {
			o := downOptions(t, c.retries)
			ctx := context.Background()
			if c.deadline {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Minute)
				defer cancel()
			}
			_, err := backend.Dial(ctx, o)
			var ce *backend.ConnectError
			require.ErrorAs(t, err, &ce)
			require.False(t, ce.TimedOut)
			require.Equal(t, c.attempts, ce.Attempts, "%+v", c)
		}
	})
}

// backoff: 0s does not turn a long deadline into a busy loop.
func TestDialWithDeadlineAndNoBackoffPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := downOptions(t, 1)
		o.Wait = func(int) time.Duration { return 0 }
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := backend.Dial(ctx, o)
		var ce *backend.ConnectError
		require.ErrorAs(t, err, &ce)
		require.True(t, ce.TimedOut)
		require.Equal(t, 2+9, ce.Attempts, "two at once, then one every 100ms")
	})
}
