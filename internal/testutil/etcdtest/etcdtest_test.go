package etcdtest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// A started server answers; after Stop nothing listens on its port; after
// Start it answers again on the same endpoint, with its data kept.
func TestStopAndStartKeepTheEndpoint(t *testing.T) {
	s := Start(t)
	url := "http://" + s.Endpoint() + "/health"
	code, err := get(url)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)

	s.Stop()
	_, err = get(url)
	require.Error(t, err, "etcd still answers after Stop")

	s.Start()
	code, err = get(url)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
}

// fakeTB records Skip and Fatal instead of ending the test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func TestNoEtcdSkipsOrFailsUnderCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	tb := &fakeTB{TB: t}
	require.Empty(t, Find(tb))
	require.Contains(t, tb.skipped, "apt-get install --no-install-recommends etcd-server")
	require.Empty(t, tb.fatal)

	t.Setenv("CI", "true")
	tb = &fakeTB{TB: t}
	require.Empty(t, Find(tb))
	require.Contains(t, tb.fatal, "no etcd server on PATH")
	require.Empty(t, tb.skipped)
}
