// Package chromiumtest runs a real headless Chromium for tests of pages
// sluice serves (the dashboard): it loads a URL and returns the rendered
// DOM, or writes a screenshot.
//
// A missing browser fails the test under CI=true (CI installs Debian's
// chromium package, see .ci/run) and skips it elsewhere. Each run gets a
// fresh profile directory and its own process group; the group is killed
// when the run ends, so no browser process outlives it.
package chromiumtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Names looked up on PATH, in order.
var Names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// runTimeout bounds one browser run: a guard against a hung browser, not
// an expectation (a run takes about a second).
const runTimeout = 3 * time.Minute

// Browser is a Chromium binary a test may run.
type Browser struct {
	t   testing.TB
	bin string
}

// Find returns the browser, or fails (CI=true) or skips the test when
// none of Names is on PATH.
func Find(t testing.TB) *Browser {
	t.Helper()
	for _, name := range Names {
		if bin, err := exec.LookPath(name); err == nil {
			return &Browser{t: t, bin: bin}
		}
	}
	msg := fmt.Sprintf("chromiumtest: no headless browser on PATH (looked for %v); install Debian's chromium package (apt-get install --no-install-recommends chromium)", Names)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
	return nil
}

// Options shape one run.
type Options struct {
	Width, Height int // the window, in CSS pixels; 1280×900 when 0
	// VirtualTime is how much page time (timers, polling) passes before
	// the DOM is dumped or the screenshot taken; Chromium's virtual
	// time runs ahead of the wall clock while the page is idle and
	// waits while it loads. 5 s when 0.
	VirtualTime time.Duration
}

// DumpDOM loads url and returns its DOM, serialised, after
// opts.VirtualTime. Chromium on Linux keeps a window at least 500 pixels
// wide: to lay a page out narrower, load it in an iframe of that width.
func (b *Browser) DumpDOM(url string, opts Options) string {
	b.t.Helper()
	return string(b.run(opts, "--dump-dom", url))
}

// Screenshot loads url and writes a PNG of the window to path.
func (b *Browser) Screenshot(url, path string, opts Options) {
	b.t.Helper()
	b.run(opts, "--screenshot="+path, "--hide-scrollbars", url)
	if _, err := os.Stat(path); err != nil {
		b.t.Fatalf("chromiumtest: no screenshot written: %v", err)
	}
}

func (b *Browser) run(opts Options, args ...string) []byte {
	b.t.Helper()
	if opts.Width == 0 {
		opts.Width, opts.Height = 1280, 900
	}
	if opts.VirtualTime == 0 {
		opts.VirtualTime = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, append([]string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir=" + b.t.TempDir(),
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--disable-crash-reporter",
		"--window-size=" + strconv.Itoa(opts.Width) + "," + strconv.Itoa(opts.Height),
		"--virtual-time-budget=" + strconv.FormatInt(opts.VirtualTime.Milliseconds(), 10),
	}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Its own process group, so that the browser's helpers (zygote,
	// renderer, GPU process) are killed with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Start()
	if err != nil {
		b.t.Fatalf("chromiumtest: starting %s: %v", b.bin, err)
	}
	err = cmd.Wait()
	// Whatever is left of the group (a helper that did not exit with
	// the browser) goes now.
	if kerr := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
		b.t.Errorf("chromiumtest: killing the browser's process group: %v", kerr)
	}
	if err != nil {
		b.t.Fatalf("chromiumtest: %s %v: %v\n%s", b.bin, args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}
