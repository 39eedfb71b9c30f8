package proxy_test

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/wire"
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A client that stops reading while a 1 GB result arrives must not make
// sluice buffer it: the relay blocks on the client socket, the server on
// sluice's, and memory stays flat.
func TestStalledClientDoesNotGrowMemory(t *testing.T) {
	h := startWith(t, "", "log:\n  level: info\n")
	ctx := context.Background()
	// A raw client: log in with pgconn, then take over its socket.
	pc, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	hj, err := pc.Hijack()
	require.NoError(t, err)
	conn := hj.Conn
	defer conn.Close()

	before := heapInUse()
	require.NoError(t, wire.Write(conn, &pgproto3.Query{String: "COPY (SELECT repeat('x', 1000) FROM generate_series(1, 1000000)) TO STDOUT"}))
	// Give the server time to fill every buffer between it and us.
	var last int64
	require.Eventually(t, func() bool {
		cur := relayedDown(t, h)
		steady := cur == last && cur > 0
		last = cur
		return steady
	}, 60*time.Second, 500*time.Millisecond, "relay never stalled")
	grown := int64(heapInUse()) - int64(before)
	t.Logf("relayed %d bytes before stalling; heap grew by %d bytes", last, grown)
	require.Less(t, last, int64(64<<20), "sluice kept reading from the server although the client did not read")
	require.Less(t, grown, int64(16<<20), "heap grew with the unread result")
	conn.(*net.TCPConn).SetLinger(0)
}

// relayedDown reads sluice's server-to-client byte counter.
func relayedDown(t *testing.T, h *harness) int64 {
	mfs, err := h.srv.Metrics().Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "sluice_relayed_bytes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "server_to_client" {
					return int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

func TestMaxClientConnections(t *testing.T) {
	h := startWith(t, "", "limits:\n  max_client_connections: 2\n")
	ctx := context.Background()
	h.connect(ctx)
	h.connect(ctx)
	_, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.Equal(t, "53300", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), "max_client_connections")
}
