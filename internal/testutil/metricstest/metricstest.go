// Package metricstest reads single series out of a Prometheus registry
// for tests: a counter's or gauge's value, a histogram's count and sum.
package metricstest

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// find returns the series of family name whose labels include every
// name/value pair in labels (nil when there is none).
func find(t testing.TB, g prometheus.Gatherer, name string, labels []string) *dto.Metric {
	t.Helper()
	require.Zero(t, len(labels)%2, "labels are name/value pairs")
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
						break
					}
				}
				if !found {
					continue series
				}
			}
			return m
		}
	}
	return nil
}

// Value returns the value of the counter, gauge or untyped series of
// family name with labels (name/value pairs), and whether it exists.
func Value(t testing.TB, g prometheus.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	m := find(t, g, name, labels)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	}
	return m.GetUntyped().GetValue(), true
}

// Histogram returns the sample count and sum of the histogram series of
// family name with labels, and whether it exists.
func Histogram(t testing.TB, g prometheus.Gatherer, name string, labels ...string) (count uint64, sum float64, ok bool) {
	t.Helper()
	m := find(t, g, name, labels)
	if m == nil || m.Histogram == nil {
		return 0, 0, false
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(), true
}

// DocumentedFamilies returns the metric families named in the first
// column of the metrics table of docs/operations.md (path): every
// `sluice_...` in backquotes, in order.
func DocumentedFamilies(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(b)
	start := strings.Index(text, "## Metrics (")
	require.GreaterOrEqual(t, start, 0, "no metrics section in %s", path)
	var names []string
	for _, line := range strings.Split(text[start:], "\n")[1:] {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if !strings.HasPrefix(line, "| `sluice_") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range documentedName.FindAllStringSubmatch(first, -1) {
			names = append(names, m[1])
		}
	}
	require.NotEmpty(t, names, "no metrics table in %s", path)
	return names
}

var documentedName = regexp.MustCompile("`(sluice_[a-z0-9_]+)")

// ScrapedFamilies returns the families a text-format scrape declares
// (its # TYPE lines), by name, with their types.
func ScrapedFamilies(scrape []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(scrape), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}
