package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/dashboard"
	"github.com/sluice-proxy/sluice/internal/testutil/chromiumtest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/sluicetest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// ScreenshotEnv names a path: when set, TestDashboardInChromium also
// writes the page's screenshot there (docs/dashboard.png is made so).
const ScreenshotEnv = "SLUICE_DASHBOARD_SCREENSHOT"

const maxSize = 2

// TestDashboardInChromium loads the page in a real headless Chromium in
// front of a real sluice (a primary and a standby, so that the topology
// is monitored) with a known state: both server connections of the
// pool held by two clients, a third client waiting for one, one login
// refused for a wrong password. The numbers the page shows must be
// those, and the page must not scroll sideways on a 390 px phone.
func TestDashboardInChromium(t *testing.T) {
	browser := chromiumtest.Find(t)
	set := pgtest.ReplicaSet(t, 1)
	admin := startSluice(t, set)
	ctx := context.Background()
	port := admin.proxyPort

	// Before the refused login, so that the dashboard has a snapshot
	// without it to count it from.
	admin.waitJSON(t, "the topology seen", func(v dashboard.View) bool {
		h := hosts(v)
		return h["primary"] == 1 && h["standby"] == 1
	})
	_, err := pgconn.Connect(ctx, dsn(port, "not the password"))
	require.Error(t, err)

	// Two clients hold the pool's two server connections (session
	// mode), after some queries; a third waits for one.
	for range maxSize {
		c, err := pgconn.Connect(ctx, dsn(port, pgtest.AppPassword))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close(context.Background()) })
		for range 5 {
			_, err = c.Exec(ctx, "SELECT 1").ReadAll()
			require.NoError(t, err)
		}
	}
	waitCtx, stopWaiting := context.WithCancel(ctx)
	var waiter sync.WaitGroup
	waiter.Add(1)
	go func() {
		defer waiter.Done()
		if c, err := pgconn.Connect(waitCtx, dsn(port, pgtest.AppPassword)); err == nil {
			c.Close(context.Background())
		}
	}()
	t.Cleanup(func() { stopWaiting(); waiter.Wait() })

	v := admin.waitJSON(t, "two active server connections, one waiting client, one refusal", func(v dashboard.View) bool {
		p := appPool(v)
		return p != nil && value(p.Active) == maxSize && value(p.Waiting) == 1 && refusals(v)["wrong_password"] == 1
	})
	// The page degrades to "–" for a series /metrics does not have.
	metricsText := admin.get(t, "/metrics")
	wantMax := "–"
	if strings.Contains(metricsText, "sluice_pool_max_size{") {
		wantMax = strconv.Itoa(maxSize)
		require.Equal(t, float64(maxSize), value(appPool(v).Max))
	}

	dom := loadRendered(t, browser, admin.url+"/")
	shown := testids(dom)
	pool := "pool/" + pgtest.AppDB + "/" + pgtest.AppUser + "/"
	primary, standby := hostName(set.Primary.Port), hostName(set.Standbys[0].Port)
	for id, want := range map[string]string{
		"status":                        "live",
		pool + "active":                 strconv.Itoa(maxSize),
		pool + "idle":                   "0",
		pool + "waiting":                "1",
		pool + "clients":                strconv.Itoa(maxSize), // the two holders; the waiter is still logging in
		pool + "max":                    wantMax,
		"refusals/wrong_password/total": "1",
		"host/" + pgtest.AppDB + "/" + primary + "/role": "primary",
		"host/" + pgtest.AppDB + "/" + primary + "/up":   "up",
		"host/" + pgtest.AppDB + "/" + standby + "/role": "standby",
		"host/" + pgtest.AppDB + "/" + standby + "/up":   "up",
		"failovers/" + pgtest.AppDB:                      "0",
	} {
		require.Equal(t, want, shown[id], "%s shown; DOM:\n%s", id, dom)
	}

	// A phone: the page in a 390 px wide frame of the same origin, whose
	// width the harness reads once the page has rendered.
	phone := browser.DumpDOM(admin.harness+"/phone.html", chromiumtest.Options{Width: 600, Height: 900})
	m := regexp.MustCompile(`data-frame-scroll-width="(\d+)"`).FindStringSubmatch(phone)
	require.NotNil(t, m, "the harness saw no rendered page:\n%s", phone)
	width, _ := strconv.Atoi(m[1])
	require.LessOrEqual(t, width, 390, "the page scrolls sideways at 390 px")

	// The data unreachable: the page says so rather than showing numbers
	// as if they were current.
	broken := testids(browser.DumpDOM(admin.harness+"/broken/", chromiumtest.Options{}))
	require.Equal(t, "unreachable", broken["status"])
	require.Contains(t, broken["updated"], "HTTP 503")

	if path := os.Getenv(ScreenshotEnv); path != "" {
		browser.Screenshot(admin.url+"/", path, chromiumtest.Options{Width: 1100, Height: 760})
		t.Logf("screenshot written to %s", path)
	}
}

// runningSluice is a daemon (proxy and admin listener, wired as
// cmd/sluice wires them) and a same-origin harness in front of its admin
// listener.
type runningSluice struct {
	url, harness string
	proxyPort    int
	client       *http.Client
}

func startSluice(t *testing.T, set *pgtest.Set) *runningSluice {
	text := fmt.Sprintf(`listen: {address: "127.0.0.1:0"}
admin: {address: "127.0.0.1:0"}
log: {level: info}
shutdown_timeout: 5s
users:
  - {name: %s, password: %s}
  - {name: %s, password: %s}
databases:
  %s:
    hosts: ["%s", "%s"]
    pool_mode: session
    health_check_interval: 500ms
    pool: {max_size: %d, borrow_timeout: 120s}
    failover: {user: %s}
`, pgtest.AppUser, pgtest.AppPassword, pgtest.MonitorUser, pgtest.MonitorPassword, pgtest.AppDB,
		hostName(set.Primary.Port), hostName(set.Standbys[0].Port), maxSize, pgtest.MonitorUser)
	cfg, err := config.ParseWith([]byte(text), sluicetest.NoEnv, config.ReadSecretFile)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	d, err := daemon.Start(cfg, "", logs)
	require.NoError(t, err)
	t.Cleanup(func() {
		d.Shutdown()
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
	})
	adminURL := "http://" + d.Admin.Addr().String()
	target, err := url.Parse(adminURL)
	require.NoError(t, err)
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = transport
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("/phone.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, phoneHarness)
	})
	// The page, with its data failing.
	mux.HandleFunc("/broken/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/dashboard.json") {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		r.URL.Path = "/"
		proxy.ServeHTTP(w, r)
	})
	harness := httptest.NewServer(mux)
	t.Cleanup(harness.Close)
	return &runningSluice{url: adminURL, harness: harness.URL, proxyPort: d.Proxy.Addr().(*net.TCPAddr).Port,
		client: &http.Client{Transport: transport}}
}

// phoneHarness frames the dashboard at a phone's width and, once it has
// rendered data, notes how wide its document is.
const phoneHarness = `<!doctype html><body style="margin:0">
<iframe id="f" src="/" style="width:390px;height:844px;border:0"></iframe>
<script>
function check() {
  const doc = document.getElementById("f").contentDocument;
  if (doc && doc.body && doc.body.dataset.rendered) {
    document.body.dataset.frameScrollWidth = String(doc.documentElement.scrollWidth);
    return;
  }
  setTimeout(check, 100);
}
check();
</script></body>`

func (s *runningSluice) get(t *testing.T, path string) string {
	resp, err := s.client.Get(s.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, b)
	return string(b)
}

// waitJSON polls /dashboard.json until ok holds. The deadline guards
// against a hang; it is not an expectation of speed.
func (s *runningSluice) waitJSON(t *testing.T, what string, ok func(dashboard.View) bool) dashboard.View {
	t.Helper()
	var v dashboard.View
	for deadline := time.Now().Add(2 * time.Minute); ; {
		v = dashboard.View{}
		require.NoError(t, json.Unmarshal([]byte(s.get(t, "/dashboard.json")), &v))
		if ok(v) {
			return v
		}
		require.True(t, time.Now().Before(deadline), "waiting for %s; last view: %+v", what, v)
		time.Sleep(100 * time.Millisecond)
	}
}
