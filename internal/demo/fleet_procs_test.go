package demo

import (
	"errors"
	"testing"
)

// Without etcd or haproxy the fleet demo says what to install.
func TestFindToolSaysWhatToInstall(t *testing.T) {
	_, err := findTool("etcd-server", "sluice-no-such-etcd", "/nonexistent/etcd")
	if !errors.Is(err, ErrMissingTool) {
		t.Fatalf("want ErrMissingTool, got %v", err)
	}
	const want = "demo: missing tool: sluice-no-such-etcd not found (looked for sluice-no-such-etcd, /nonexistent/etcd); install it, e.g. apt-get install --no-install-recommends etcd-server"
	if err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}
}
