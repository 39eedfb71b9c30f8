// Package promtooltest runs Prometheus's promtool in tests: lint a
// scrape (check metrics), check and unit-test alerting rules. promtool
// ships in Debian's prometheus package (.ci/run installs it). Without it
// a test is skipped locally with a message saying so, and fails in CI
// (CI=true), where a skip would hide that nothing was checked.
package promtooltest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Path returns promtool's path, or skips (fails in CI) the test when it
// is not installed.
func Path(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	const how = "promtool not found on PATH (Debian: apt-get install --no-install-recommends prometheus)"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how + "; skipping")
	return ""
}

// run runs promtool with args and stdin, returning its combined output
// and whether it exited 0.
func run(t testing.TB, stdin []byte, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(Path(t), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
		}
	}
	return string(out), err == nil
}

// CheckMetrics lints a scrape in the text exposition format with
// `promtool check metrics` and fails the test on any problem it reports
// (it exits 3 for lint problems, 1 for errors).
func CheckMetrics(t testing.TB, scrape []byte) {
	t.Helper()
	out, ok := run(t, scrape, "check", "metrics")
	if !ok || strings.TrimSpace(out) != "" {
		t.Fatalf("promtool check metrics found problems:\n%s", out)
	}
}

// CheckRules validates rule files with `promtool check rules` (syntax,
// PromQL, duplicate rules).
func CheckRules(t testing.TB, files ...string) {
	t.Helper()
	out, ok := run(t, nil, append([]string{"check", "rules"}, files...)...)
	if !ok {
		t.Fatalf("promtool check rules %s:\n%s", strings.Join(files, " "), out)
	}
	t.Logf("promtool check rules:\n%s", out)
}

// TestRules runs rule unit tests with `promtool test rules`.
func TestRules(t testing.TB, files ...string) {
	t.Helper()
	out, ok := run(t, nil, append([]string{"test", "rules"}, files...)...)
	if !ok {
		t.Fatalf("promtool test rules %s:\n%s", strings.Join(files, " "), out)
	}
	t.Logf("promtool test rules:\n%s", out)
}
