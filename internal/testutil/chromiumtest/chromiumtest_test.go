package chromiumtest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The page's timers run in virtual time: a 3 s timeout has fired by the
// time the DOM is dumped, without the test waiting 3 s of wall clock.
func TestDumpDOMRunsThePagesTimers(t *testing.T) {
	b := Find(t)
	page := "data:text/html," + url.PathEscape(`<body><script>setTimeout(() => { document.body.dataset.late = "yes" }, 3000)</script></body>`)
	dom := b.DumpDOM(page, Options{})
	require.Contains(t, dom, `data-late="yes"`)
}

func TestScreenshotWritesAPNG(t *testing.T) {
	b := Find(t)
	path := filepath.Join(t.TempDir(), "shot.png")
	b.Screenshot("data:text/html,"+url.PathEscape("<h1>hello</h1>"), path, Options{Width: 390, Height: 300, VirtualTime: time.Second})
	png, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(png), "\x89PNG"))
}

// fakeTB records Skip and Fatal instead of ending the test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func TestNoBrowserSkipsOrFailsUnderCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	tb := &fakeTB{TB: t}
	require.Nil(t, Find(tb))
	require.Contains(t, tb.skipped, "no headless browser on PATH")
	require.Contains(t, tb.skipped, "apt-get install --no-install-recommends chromium")
	require.Empty(t, tb.fatal)

	t.Setenv("CI", "true")
	tb = &fakeTB{TB: t}
	require.Nil(t, Find(tb))
	require.Contains(t, tb.fatal, "no headless browser on PATH")
	require.Empty(t, tb.skipped)
}
