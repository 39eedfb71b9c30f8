package notify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
)

// downDialer never connects (a server that is down, or a full
// max_db_connections gate).
type downDialer struct{ dials atomic.Int32 }

func (d *downDialer) DialListener(context.Context) (*backend.Conn, error) {
	d.dials.Add(1)
	return nil, errors.New("down")
}
func (d *downDialer) CloseListener(*backend.Conn)       {}
func (d *downDialer) ListenerUsable(*backend.Conn) bool { return true }

type nopMetric struct{}

func (nopMetric) Inc() {}
func (nopMetric) Dec() {}

// While the listener cannot connect, a LISTEN waits for it (bounded by
// its context), the Hub keeps trying, and Close ends the attempts and
// releases every waiter; a subscriber that leaves takes its channels
// with it.
func TestHubWithoutServer(t *testing.T) {
	d := &downDialer{}
	h := NewHub(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Dialer: d,
		Connections: nopMetric{}, Received: nopMetric{}, Dropped: nopMetric{}, Retry: time.Millisecond})
	a := h.NewSubscriber(10, func() {})
	b := h.NewSubscriber(10, func() {})
	seq := h.Change(a, Change{Listen: []string{"x", "y"}})
	require.NotZero(t, seq, "the LISTEN is to be confirmed")
	require.Equal(t, seq, h.Change(b, Change{Listen: []string{"y"}}), "both wait for the listener's first command")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, h.Wait(ctx, seq), context.Canceled)
	require.Eventually(t, func() bool { return d.dials.Load() >= 3 }, time.Minute, time.Millisecond, "it keeps trying")

	h.Change(a, Change{UnlistenAll: true})
	require.Equal(t, []string{"y"}, h.Channels())
	b.Leave()
	require.Empty(t, h.Channels())

	h.Change(a, Change{Listen: []string{"z"}})
	done := make(chan error)
	go func() { done <- h.Wait(context.Background(), h.Change(a, Change{})) }()
	h.Close()
	require.NoError(t, <-done, "Close releases waiters")
	require.Zero(t, h.Change(a, Change{Listen: []string{"w"}}), "a closed Hub starts nothing")
}

// Notifications are queued per subscriber, shared, and wake it once
// until it takes them.
func TestSubscriberQueue(t *testing.T) {
	h := NewHub(Options{})
	var wakes int
	s := h.NewSubscriber(2, func() { wakes++ })
	first, dropped := s.push([]byte("a"))
	require.True(t, first)
	require.False(t, dropped)
	first, _ = s.push([]byte("b"))
	require.False(t, first)
	_, dropped = s.push([]byte("c"))
	require.True(t, dropped)
	require.True(t, s.Pending())
	frames, n := s.Take()
	require.Equal(t, [][]byte{[]byte("b"), []byte("c")}, frames)
	require.Equal(t, 1, n)
	require.False(t, s.Pending())
	h.Close()
}
