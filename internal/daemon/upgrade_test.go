package daemon_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/handoff"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// fakePeerEnv makes this test binary, started as an upgrade's new
// process, act as a peer of the given behaviour (fakePeer) instead of
// running tests.
const fakePeerEnv = "SLUICE_TEST_FAKE_PEER"

// fakePeer is a new process that fails in one way: "future" speaks a
// later hand-off protocol, "silent" says hello and never ready, "abort"
// refuses after taking the listeners, "exit" closes at once.
func fakePeer(mode string) {
	f := os.NewFile(3, "handoff")
	conn, err := handoff.FileConn(f)
	if err != nil {
		os.Exit(3)
	}
	switch mode {
	case "exit":
		os.Exit(1)
	case "future":
		conn.Send(handoff.KindHello, handoff.EncodeHello(handoff.Hello{Protocol: handoff.Protocol + 1, PID: os.Getpid()}))
		conn.Recv()
		conn.Recv() // the old process closes: it does not hand over
		os.Exit(0)
	}
	if _, err := conn.Handshake(handoff.Hello{PID: os.Getpid()}); err != nil {
		os.Exit(4)
	}
	for {
		kind, _, files, err := conn.Recv()
		if err != nil {
			os.Exit(5)
		}
		for _, f := range files {
			f.Close()
		}
		if kind == handoff.KindDone {
			break
		}
	}
	if mode == "abort" {
		conn.Send(handoff.KindAbort, handoff.AbortText("fake peer refuses"))
		os.Exit(1)
	}
	conn.Recv() // silent: until the old process gives up (and kills this one)
	os.Exit(0)
}

// A new process that speaks another protocol, never says ready, refuses,
// or exits: the upgrade fails with the reason, the child is gone, and
// the old process serves on (a client connected before is still served,
// and new ones are accepted).
func TestFailedUpgradesKeepServing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeConfig(t, path, "info", freePort(t))
	d, _ := startDaemonAt(t, path)
	defer d.Shutdown()
	ctx := context.Background()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
		d.Proxy.Addr().(*net.TCPAddr).Port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	held, err := pgconn.Connect(ctx, dsn)
	require.NoError(t, err)
	defer held.Close(ctx)
	self, err := os.Executable()
	require.NoError(t, err)
	// The hand-off's descriptors are Unix sockets; the other tests of the
	// package open and close TCP ones meanwhile, so only those count.
	before := countUnixSockets(t)
	failUpgrades(t, d, self, held, dsn)
	require.Equal(t, before, countUnixSockets(t), "failed upgrades leak no descriptor")
}

// countUnixSockets counts this process's descriptors that are Unix
// sockets (their inodes listed in /proc/net/unix).
func countUnixSockets(t *testing.T) int {
	table, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Skip("no /proc/net/unix")
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 7 {
			inodes[f[6]] = true
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok && inodes[strings.TrimSuffix(inode, "]")] {
			n++
		}
	}
	return n
}

func failUpgrades(t *testing.T, d *daemon.Daemon, self string, held *pgconn.PgConn, dsn string) {
	ctx := context.Background()
	for _, tc := range []struct{ mode, want string }{
		{"future", "incompatible hand-off protocol"},
		{"silent", "did not say ready within"},
		{"abort", "the new process refused: fake peer refuses"},
		{"exit", "hello"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Setenv(fakePeerEnv, tc.mode)
			timeout := time.Minute
			if tc.mode == "silent" {
				timeout = 200 * time.Millisecond // the timeout is what this case tests
			}
			err := d.UpgradeTo(self, nil, timeout)
			require.Error(t, err)
			require.True(t, strings.Contains(err.Error(), tc.want), err.Error())
			_, err = held.Exec(ctx, "SELECT 1").ReadAll()
			require.NoError(t, err, "a client of the old process is served on")
			c, err := pgconn.Connect(ctx, dsn)
			require.NoError(t, err, "the old process still accepts")
			c.Close(ctx)
		})
	}
}
