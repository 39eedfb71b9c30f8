package dashboard_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/dashboard"
	"github.com/sluice-proxy/sluice/internal/testutil/chromiumtest"
)

// TestPageRendersEveryField: a unit test of the page's rendering, in
// Chromium, against a fixed view with every field set (the integration
// test's sluice has no histograms, pins or failovers to show).
func TestPageRendersEveryField(t *testing.T) {
	browser := chromiumtest.Find(t)
	f := func(v float64) *float64 { return &v }
	up, down := true, false
	failedOver := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	view := dashboard.View{At: failedOver, WindowSeconds: 60, ClientConnections: f(12),
		Databases: []dashboard.DatabaseView{{
			Name:                  "appdb",
			Pools:                 []dashboard.PoolView{{User: "app", Active: f(8), Idle: f(2), Max: f(10), ClientsActive: f(11), Waiting: f(1)}},
			Wait:                  dashboard.Percentiles{Count: f(600), P50: f(0.0000421), P95: f(0.0015), P99: f(2.5)},
			Transaction:           dashboard.Percentiles{Count: f(0)},
			TransactionsPerSecond: f(123.456),
			BorrowTimeouts:        dashboard.ReasonCount{Reason: "borrow_timeout", LastWindow: f(3), Total: f(7)},
			Hosts: []dashboard.HostView{{Host: "db1:5432", Role: "primary", Up: &up},
				{Host: "db2:5432", Role: "standby", Up: &up, LagSeconds: f(0.25)},
				{Host: "db3:5432", Role: "fenced", Up: &down}},
			Failovers: f(1), LastFailover: &failedOver, NoPrimarySeconds: f(0),
		}},
		Pins:     []dashboard.ReasonCount{{Reason: "temp_table", Now: f(2), LastWindow: f(5), Total: f(9)}},
		Refusals: []dashboard.ReasonCount{{Reason: "<b>wrong_password</b>", LastWindow: f(4), Total: f(40)}},
	}
	page := dashboard.New(nil)
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page)
	mux.HandleFunc("GET /dashboard.json", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(view)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dom := loadRendered(t, browser, srv.URL+"/")
	shown := testids(dom)
	for id, want := range map[string]string{
		"status": "live", "client-connections": "12", "window": "rates over the last 60 s",
		"pool/appdb/app/active": "8", "pool/appdb/app/idle": "2", "pool/appdb/app/max": "10",
		"pool/appdb/app/clients": "11", "pool/appdb/app/waiting": "1",
		"wait/appdb/p50": "42 µs", "wait/appdb/p95": "1.50 ms", "wait/appdb/p99": "2.50 s", "wait/appdb/count": "600",
		"tx/appdb/p50": "–", "tx/appdb/count": "0",
		"tps/appdb": "123.46", "timeouts/appdb": "3",
		"host/appdb/db1:5432/role": "primary", "host/appdb/db1:5432/up": "up", "host/appdb/db1:5432/lag": "–",
		"host/appdb/db2:5432/role": "standby", "host/appdb/db2:5432/lag": "250 ms",
		"host/appdb/db3:5432/role": "fenced", "host/appdb/db3:5432/up": "down",
		"failovers/appdb": "1", "no-primary/appdb": "0 s",
		"pins/temp_table/now": "2", "pins/temp_table/window": "5", "pins/temp_table/total": "9",
		// Text from the data is text, never markup.
		"refusals/<b>wrong_password</b>/window": "4", "refusals/<b>wrong_password</b>/total": "40",
	} {
		require.Equal(t, want, shown[id], "%s shown; DOM:\n%s", id, dom)
	}
	require.NotEqual(t, "–", shown["last-failover/appdb"])
	require.NotContains(t, dom, "<b>wrong_password</b>")
}
