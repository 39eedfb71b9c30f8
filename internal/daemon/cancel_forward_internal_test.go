package daemon

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/handoff"
)

// The new process's side never blocks the accept path: with an old
// process that does not read, cancels beyond the queue are dropped; once
// the old process is gone, none is taken.
func TestCancelForwarderIsBounded(t *testing.T) {
	conn, peerFile, err := handoff.Pair()
	require.NoError(t, err)
	defer conn.Close()
	defer peerFile.Close()
	f := newCancelForwarder(conn, slog.New(slog.DiscardHandler))
	for i := range 10 * cancelQueueLen {
		require.True(t, f.forward(uint32(i), [4]byte{1, 2, 3, 4}))
	}
	require.Len(t, f.queue, cancelQueueLen)
	f.stop()
	require.False(t, f.forward(1, [4]byte{}), "nothing is taken once the old process is gone")
	f.run() // returns at once after stop
}

// The old process's reader applies each Cancel as it comes, passes the
// answers to clients on, skips a malformed Cancel, and ends with the
// socket.
func TestHandOffReaderAppliesCancels(t *testing.T) {
	old, file, err := handoff.Pair()
	require.NoError(t, err)
	defer old.Close()
	successor, err := handoff.FileConn(file)
	require.NoError(t, err)
	type key struct {
		pid    uint32
		secret [4]byte
	}
	applied := make(chan key, 4)
	r := startHandOffReader(old, func(pid uint32, secret [4]byte) { applied <- key{pid, secret} }, slog.New(slog.DiscardHandler))
	f := newCancelForwarder(successor, slog.New(slog.DiscardHandler))
	go f.run()
	require.True(t, f.forward(7, [4]byte{9, 8, 7, 6}))
	require.Equal(t, key{7, [4]byte{9, 8, 7, 6}}, <-applied)
	require.NoError(t, successor.Send(handoff.KindCancel, []byte{1, 2, 3}))
	require.NoError(t, successor.Send(handoff.KindAdopted, nil))
	a := <-r.answers
	require.Equal(t, handoff.KindAdopted, a.kind)
	require.True(t, f.forward(8, [4]byte{1, 1, 1, 1}))
	require.Equal(t, key{8, [4]byte{1, 1, 1, 1}}, <-applied, "the malformed cancel was skipped, the reader goes on")
	f.stop()
	successor.Close()
	r.wait()
}
