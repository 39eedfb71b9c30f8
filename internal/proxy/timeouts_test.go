package proxy_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// backendYAML starts sluice with extra settings under the database's backend.
func startBackend(t *testing.T, backendYAML, topLevel string) *harness {
	return startWith(t, "min_size: 0\n      max_size: 10\n    backend:\n      "+backendYAML, topLevel)
}

func TestReceiveTimeoutCancelsTheQueryAndKeepsTheSession(t *testing.T) {
	h := startBackend(t, "receive_timeout: 1s", "")
	ctx := context.Background()
	c := h.connect(ctx)
	pid := query(t, c, "SELECT pg_backend_pid()")
	_, err := c.Exec(ctx, "SELECT pg_sleep(5)").ReadAll()
	require.Equal(t, "57014", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), "receive_timeout")
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"), "the session goes on")
	require.Equal(t, pid, query(t, c, "SELECT pg_backend_pid()"), "on the same server connection")
}

func TestReceiveDeadlineClosesTheServerConnection(t *testing.T) {
	h := startBackend(t, "receive_deadline: 1s", "")
	ctx := context.Background()
	c := h.connect(ctx)
	_, err := c.Exec(ctx, "SELECT pg_sleep(5)").ReadAll()
	require.Equal(t, "08006", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), "receive_deadline")
	require.True(t, c.IsClosed() || c.Exec(ctx, "SELECT 1").Close() != nil)
	// An idle session is not affected by the deadline.
	c2 := h.connect(ctx)
	query(t, c2, "SELECT 1")
	_, err = c2.Exec(ctx, "SELECT pg_sleep(0.1)").ReadAll()
	require.NoError(t, err)
}

func TestClientIdleTimeoutEndsIdleSessions(t *testing.T) {
	h := startBackend(t, "receive_chunk_size: 8192", "limits:\n  client_idle_timeout: 1s\n")
	ctx := context.Background()
	c := h.connect(ctx)
	// A query longer than the idle timeout is not idleness.
	_, err := c.Exec(ctx, "SELECT pg_sleep(1.5)").ReadAll()
	require.NoError(t, err)
	// Sitting idle is: the next use finds the session closed.
	require.Eventually(t, func() bool { return containsLog(h, "client_idle_timeout") }, 20e9, 20e6)
	_, err = c.Exec(ctx, "SELECT 1").ReadAll()
	require.Error(t, err)
}

func containsLog(h *harness, s string) bool { return strings.Contains(h.logs.String(), s) }

// copyHash streams a large COPY result and hashes it.
func copyHash(t *testing.T, c *pgconn.PgConn, rows int) ([]byte, int64) {
	hw := &countingHash{Hash: sha256.New()}
	_, err := c.CopyTo(context.Background(), hw, fmt.Sprintf("COPY (SELECT g, repeat(md5(g::text), 30) FROM generate_series(1, %d) g) TO STDOUT", rows))
	require.NoError(t, err)
	return hw.Sum(nil), hw.n
}

type countingHash struct {
	hash.Hash
	n int64
}

func (h *countingHash) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.Hash.Write(p)
}

// Results far larger than the chunk arrive intact whatever the chunk size.
func TestLargeResultsArriveIntactAtEveryChunkSize(t *testing.T) {
	const rows = 104_000 // just over 100 MB
	direct, err := pgconn.Connect(context.Background(), pgtest.Cluster(t).DSN(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, err)
	defer direct.Close(context.Background())
	want, n := copyHash(t, direct, rows)
	require.Greater(t, n, int64(100_000_000))
	for _, size := range []int{512, 8192, 65536} {
		h := startBackend(t, fmt.Sprintf("receive_chunk_size: %d", size), "log:\n  level: info\n")
		got, _ := copyHash(t, h.connect(context.Background()), rows)
		require.Equal(t, want, got, "chunk size %d", size)
	}
}
