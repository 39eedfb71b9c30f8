package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/metricstest"
	"github.com/sluice-proxy/sluice/internal/testutil/promtooltest"
)

const (
	dashboardFile  = "../../deploy/grafana/sluice.json"
	alertsFile     = "../../deploy/prometheus/alerts.yml"
	alertTestsFile = "../../deploy/prometheus/alerts_test.yml"
	operationsDoc  = "../../docs/operations.md"
)

var seriesName = regexp.MustCompile(`\bsluice_[a-z0-9_]+`)

// requireExported checks every sluice_ series name in text is a family
// of docs/operations.md's metrics table (which TestScrapeIsCleanAndDocumented
// keeps equal to a real scrape), or a histogram's _bucket, _sum or _count.
func requireExported(t *testing.T, file, text string) {
	t.Helper()
	documented := metricstest.DocumentedFamilies(t, operationsDoc)
	names := seriesName.FindAllString(text, -1)
	require.NotEmpty(t, names, file)
	for _, name := range names {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(documented, b) {
				base = b
			}
		}
		require.Contains(t, documented, base, "%s queries %s, which sluice does not export", file, name)
	}
}

// The Grafana dashboard is valid JSON, takes its data source from a
// variable (so it imports into any Grafana), and queries only series
// sluice exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var dash struct {
		Title      string `json:"title"`
		Templating struct {
			List []struct{ Name, Type string } `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string          `json:"title"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			Targets    []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	var vars []string
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Name)
	}
	require.Subset(t, vars, []string{"datasource", "database", "user"})
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.Contains(t, string(p.Datasource), "${datasource}", "panel %q", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
			exprs = append(exprs, tg.Expr)
		}
	}
	requireExported(t, dashboardFile, strings.Join(exprs, "\n"))

	// Every query parses: promtool checks them as recording rules, with
	// Grafana's variables replaced by what they expand to.
	grafanaVars := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$database", ".*", "$user", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, err := json.Marshal(grafanaVars.Replace(e)) // a JSON string is a YAML double-quoted one
		require.NoError(t, err)
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard_queries.yml")
	require.NoError(t, os.WriteFile(path, []byte(rules.String()), 0o600))
	promtooltest.CheckRules(t, path)
}

// The alerting rules pass promtool check rules, their unit tests pass
// promtool test rules (each alert firing and not firing), and they query
// only series sluice exports.
func TestPrometheusAlerts(t *testing.T) {
	b, err := os.ReadFile(alertsFile)
	require.NoError(t, err)
	requireExported(t, alertsFile, string(b))
	promtooltest.CheckRules(t, alertsFile)
	promtooltest.TestRules(t, alertTestsFile)
	tests, err := os.ReadFile(alertTestsFile)
	require.NoError(t, err)
	for _, alert := range regexp.MustCompile(`(?m)^\s+- alert: (\w+)`).FindAllStringSubmatch(string(b), -1) {
		require.Contains(t, string(tests), "alertname: "+alert[1], "alerts_test.yml does not test %s", alert[1])
	}
}
