package proxy_test

import (
	"testing"

	"github.com/sluice-proxy/sluice/internal/backend"
)

// TestSettingsRoundTripsPgbench counts the round trips sluice spends
// setting clients' startup parameters on server connections (Apply,
// SyncSettings) under pgbench: a new connection per transaction in
// session mode (make bench scenario 3) and 50 clients over 10 server
// connections in transaction mode. Every pgbench client sends the same
// startup parameters, so settings affinity finds a connection opened
// with them every time: none should be needed.
func TestSettingsRoundTripsPgbench(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	t.Run("session_connect_per_transaction", func(t *testing.T) {
		h := start(t, "min_size: 2\n      max_size: 20")
		before := backend.SettingsRoundTrips()
		pgbench(t, h, "-S", "-C", "-c", "10", "-j", "2", "-t", "100")
		trips := backend.SettingsRoundTrips() - before
		t.Logf("session mode, pgbench -C, 1000 transactions: %d settings round trips", trips)
		if trips != 0 {
			t.Errorf("%d settings round trips for 1000 logins with one parameter set, want 0", trips)
		}
	})
	t.Run("transaction_mode", func(t *testing.T) {
		h := start(t, txPool(10))
		before := backend.SettingsRoundTrips()
		pgbench(t, h, "-S", "-c", "50", "-j", "2", "-t", "100")
		trips := backend.SettingsRoundTrips() - before
		t.Logf("transaction mode, pgbench -c 50 over 10 connections, 5000 transactions: %d settings round trips", trips)
		if trips != 0 {
			t.Errorf("%d settings round trips for 5000 transactions with one parameter set, want 0", trips)
		}
	})
}
