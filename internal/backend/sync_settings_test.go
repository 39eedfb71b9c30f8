package backend_test

import (
	"context"
	"net"
	"testing"

	"github.com/sluice-proxy/sluice/internal/backend"
)

// brokenConn is a Conn whose socket fails every read and write: any
// round trip SyncSettings tried would return an error.
func brokenConn(t testing.TB, params map[string]string) *backend.Conn {
	a, b := net.Pipe()
	a.Close()
	b.Close()
	return &backend.Conn{Conn: a, Params: params}
}

// TestSyncSettingsNothingToSyncSendsNothing: a client that SET nothing,
// on a connection opened with its startup parameters (settings affinity),
// costs no round trip and no allocation on attach; neither does a SET to
// the value the server already reports.
func TestSyncSettingsNothingToSyncSendsNothing(t *testing.T) {
	ctx := context.Background()
	c := brokenConn(t, map[string]string{"TimeZone": "UTC", "application_name": "pgbench"})
	for _, want := range []map[string]string{nil, {}, {"timezone": "UTC"}, {"application_name": "pgbench"}} {
		before := backend.SettingsRoundTrips()
		if err := c.SyncSettings(ctx, want, 10); err != nil {
			t.Fatalf("want %v: %v (a round trip was tried)", want, err)
		}
		if n := backend.SettingsRoundTrips() - before; n != 0 {
			t.Fatalf("want %v: %d round trips", want, n)
		}
		if allocs := testing.AllocsPerRun(100, func() { _ = c.SyncSettings(ctx, want, 10) }); allocs != 0 {
			t.Errorf("want %v: %.0f allocations per call, want 0", want, allocs)
		}
	}
	// A real difference still goes to the server (and fails here).
	if err := c.SyncSettings(ctx, map[string]string{"timezone": "Europe/Paris"}, 10); err == nil {
		t.Fatal("a setting that differs was not sent")
	}
}

// BenchmarkSyncSettingsNothingToSync is the per-attach cost of a client
// that SET nothing (every transaction of a transaction-pooled client).
func BenchmarkSyncSettingsNothingToSync(b *testing.B) {
	ctx := context.Background()
	c := brokenConn(b, map[string]string{"TimeZone": "UTC", "application_name": "pgbench"})
	b.ReportAllocs()
	for b.Loop() {
		if err := c.SyncSettings(ctx, nil, 10); err != nil {
			b.Fatal(err)
		}
	}
}
