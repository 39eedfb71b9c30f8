package proxy

import (
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// erringListener fails Accept with EMFILE errs times, then reports
// itself closed.
type erringListener struct {
	errs int
	last time.Time // when the last error was returned
}

func (l *erringListener) Accept() (net.Conn, error) {
	if l.errs == 0 {
		return nil, net.ErrClosed
	}
	l.errs--
	l.last = time.Now()
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
}
func (l *erringListener) Close() error   { return nil }
func (l *erringListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6432} }

// Out of descriptors, the accept loop pauses briefly between attempts
// (never more than 100 ms, so queued clients wait no longer once a
// descriptor is free) and logs one line per interval, not one per error.
func TestAcceptErrorsBackOffAndAreLoggedOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := config.Parse([]byte("users: [{name: u, password: p}]\ndatabases: {d: {hosts: [\"127.0.0.1:5432\"]}}\n"), func(string) (string, bool) { return "", false })
		require.NoError(t, err)
		logs := &syncbuf.Buffer{}
		s, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
		require.NoError(t, err)
		defer s.bgCancel()

		// A client still logging in gives its descriptor up for the next.
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		pending := &session{srv: s, client: c1}
		_, ok := s.slots.admit(pending, 10)
		require.True(t, ok)

		l := &erringListener{errs: 1000}
		start := time.Now()
		s.acceptWG.Add(1)
		s.acceptLoop(l, false)
		took := l.last.Sub(start)
		require.Greater(t, took, 900*5*time.Millisecond, "it paused between attempts")
		require.LessOrEqual(t, took, 1000*100*time.Millisecond, "never more than 100 ms")
		require.Equal(t, 1, strings.Count(logs.String(), "accept failed"), "one line in full; the rest summarised")
		require.Contains(t, logs.String(), "too many open files")
		require.True(t, pending.wasEvicted())
		require.False(t, s.slots.loggedIn(pending))
		s.slots.release(pending)
		require.Zero(t, s.slots.open)
		require.Equal(t, 1.0, testutilCounter(t, s.metrics.ClientLoginFailure.WithLabelValues(reasonEvicted)))
	})
}

func testutilCounter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
