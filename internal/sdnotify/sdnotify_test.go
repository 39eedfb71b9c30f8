package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSystemd is a NOTIFY_SOCKET: a unixgram socket in a temp dir.
func fakeSystemd(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, path
}

func next(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	require.NoError(t, err)
	return string(buf[:n])
}

func TestNotifications(t *testing.T) {
	sock, path := fakeSystemd(t)
	t.Setenv("NOTIFY_SOCKET", path)
	n := FromEnv()
	defer n.Close()
	require.True(t, n.Enabled())
	require.NoError(t, n.Ready())
	require.Equal(t, "READY=1", next(t, sock))
	require.NoError(t, n.Reloading())
	msg := next(t, sock)
	require.True(t, strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC="), msg)
	usec, err := strconv.ParseInt(strings.TrimPrefix(msg, "RELOADING=1\nMONOTONIC_USEC="), 10, 64)
	require.NoError(t, err)
	require.Positive(t, usec)
	require.NoError(t, n.MainPID(4242))
	require.Equal(t, "MAINPID=4242", next(t, sock))
	require.NoError(t, n.Watchdog())
	require.Equal(t, "WATCHDOG=1", next(t, sock))
	require.NoError(t, n.Stopping())
	require.Equal(t, "STOPPING=1", next(t, sock))
}

func TestAbstractSocket(t *testing.T) {
	name := "sluice-sdnotify-test-" + strconv.Itoa(int(time.Now().UnixNano()))
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name, Net: "unixgram"})
	require.NoError(t, err)
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", "@"+name)
	n := FromEnv()
	defer n.Close()
	require.NoError(t, n.Status("serving"))
	require.Equal(t, "STATUS=serving", next(t, c))
}

func TestDisabledDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	require.False(t, n.Enabled())
	require.NoError(t, n.Ready())
	var none *Notifier
	require.NoError(t, none.Stopping())
	none.Close()
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	require.Zero(t, WatchdogInterval())
	t.Setenv("WATCHDOG_USEC", "20000000")
	t.Setenv("WATCHDOG_PID", "")
	require.Equal(t, 20*time.Second, WatchdogInterval())
	t.Setenv("WATCHDOG_PID", "1")
	require.Zero(t, WatchdogInterval(), "the watchdog of another process")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	require.Equal(t, 20*time.Second, WatchdogInterval())
	t.Setenv("WATCHDOG_USEC", "x")
	require.Zero(t, WatchdogInterval())
}

func TestRunWatchdogPingsAtHalfTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pings atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { RunWatchdog(ctx, 10*time.Second, func() { pings.Add(1) }); close(done) }()
		synctest.Wait()
		require.EqualValues(t, 1, pings.Load(), "a ping at once")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		require.EqualValues(t, 2, pings.Load())
		time.Sleep(15 * time.Second)
		synctest.Wait()
		require.EqualValues(t, 5, pings.Load())
		cancel()
		<-done
		RunWatchdog(context.Background(), 0, func() { t.Fatal("no watchdog, no ping") })
	})
}
