package dashboard_test

import (
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/dashboard"
	"github.com/sluice-proxy/sluice/internal/testutil/chromiumtest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// loadRendered dumps url's DOM once the page has rendered data: should
// a loaded machine end Chromium's virtual time budget before the first
// poll's answer, it loads the page again.
func loadRendered(t *testing.T, browser *chromiumtest.Browser, url string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		dom := browser.DumpDOM(url, chromiumtest.Options{})
		if strings.Contains(dom, "data-rendered=") || attempt == 5 {
			return dom
		}
	}
}

func hostName(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func dsn(port int, password string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password='%s' dbname=%s sslmode=disable connect_timeout=60",
		port, pgtest.AppUser, password, pgtest.AppDB)
}

func appPool(v dashboard.View) *dashboard.PoolView {
	for _, db := range v.Databases {
		for i, p := range db.Pools {
			if db.Name == pgtest.AppDB && p.User == pgtest.AppUser {
				return &db.Pools[i]
			}
		}
	}
	return nil
}

// hosts counts the reachable hosts of the app database by role.
func hosts(v dashboard.View) map[string]int {
	n := map[string]int{}
	for _, db := range v.Databases {
		for _, h := range db.Hosts {
			if db.Name == pgtest.AppDB && h.Up != nil && *h.Up {
				n[h.Role]++
			}
		}
	}
	return n
}

func refusals(v dashboard.View) map[string]float64 {
	n := map[string]float64{}
	for _, r := range v.Refusals {
		n[r.Reason] = value(r.Total)
	}
	return n
}

func value(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

// testids maps each element's data-testid to its text, for elements
// whose content is text only.
func testids(dom string) map[string]string {
	out := map[string]string{}
	re := regexp.MustCompile(`<[a-z0-9]+\b[^>]*\bdata-testid="([^"]*)"[^>]*>([^<]*)<`)
	for _, m := range re.FindAllStringSubmatch(dom, -1) {
		out[html.UnescapeString(m[1])] = html.UnescapeString(m[2])
	}
	return out
}
