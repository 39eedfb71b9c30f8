//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// One SIGUSR2 under a loop of new connections (TCP and the Unix socket):
// none is refused, the old process exits 0, a new pid serves, the admin
// endpoint moved with it, and systemd heard the hand-over in order.
func TestUpgradeBySignalRefusesNoConnection(t *testing.T) {
	notify := newFakeSystemd(t)
	p := startUpgradable(t, []string{"NOTIFY_SOCKET=" + notify.path, "WATCHDOG_USEC=2000000"})
	old := p.pid()
	loop := startClientLoop(p, 4)
	loop.waitMore(t, 20)
	newPID := p.upgrade()
	require.NotEqual(t, old, newPID)
	loop.waitMore(t, 20)
	loop.stop(t) // no connection attempt failed during the upgrade
	require.NoError(t, <-p.exited, "the old process exits cleanly")
	require.NoError(t, p.selectOne(context.Background(), true), "the Unix socket is still served")
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", p.admin))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, p.log(), `"msg":"upgrade: handed over to the new process"`)

	// The new process reloads on SIGHUP, telling systemd around it.
	require.NoError(t, syscall.Kill(newPID, syscall.SIGHUP))
	waitFor(t, "the reload", func() bool { return strings.Contains(p.log(), `"msg":"configuration reloaded"`) })
	p.stop()
	msgs := notify.messages(t)
	oldMsgs, newMsgs := msgs[old], msgs[newPID]
	require.Equal(t, []string{"READY=1", "MAINPID=" + strconv.Itoa(newPID)}, oldMsgs,
		"the old process: ready, then the new main pid; never STOPPING (systemd would stop the unit)")
	require.Equal(t, []string{"MAINPID=" + strconv.Itoa(newPID), "READY=1", "RELOADING=1", "MONOTONIC_USEC", "READY=1", "STOPPING=1"}, newMsgs,
		"the new process names itself, says ready, reloading and ready again around SIGHUP, and stopping at its own shutdown")
	require.Positive(t, notify.pings[old], "the old process pinged the watchdog")
	require.Positive(t, notify.pings[newPID], "the new process took the watchdog over")
}

// Ten upgrades in a row under a loop of new connections: every one served.
func TestUpgradeTenTimesInARow(t *testing.T) {
	p := startUpgradable(t, nil)
	loop := startClientLoop(p, 2)
	seen := map[int]bool{p.pid(): true}
	for range 10 {
		pid := p.upgrade()
		require.False(t, seen[pid], "each upgrade runs a new process")
		seen[pid] = true
		loop.waitMore(t, 5)
	}
	loop.stop(t)
}

// A config made invalid on disk before the upgrade: the new process
// refuses before taking anything, the old one keeps serving every client
// (idle ones connected before, session and transaction mode, go on with
// the same connections) and logs why.
func TestUpgradeWithABadConfigKeepsServing(t *testing.T) {
	p := startUpgradable(t, nil)
	held := p.holdIdleClients(t)
	old := p.pid()
	require.NoError(t, os.WriteFile(p.cfgPath, []byte("users: [\n"), 0o600))
	require.NoError(t, syscall.Kill(old, syscall.SIGUSR2))
	waitFor(t, "the failed upgrade in the log", func() bool {
		return strings.Contains(p.log(), `"msg":"upgrade failed; this process keeps serving"`)
	})
	require.Contains(t, p.log(), "the new process refused")
	require.Equal(t, old, p.pid())
	require.False(t, gone(old))
	held.requireServed(t, p)
	require.NoError(t, p.selectOne(context.Background(), false))
}

// A binary that exits at once: the old process keeps serving, idle
// session and transaction-mode clients too.
func TestUpgradeWithABinaryThatExitsKeepsServing(t *testing.T) {
	p := startUpgradable(t, nil, "--upgrade-binary", "/bin/false")
	held := p.holdIdleClients(t)
	old := p.pid()
	require.NoError(t, syscall.Kill(old, syscall.SIGUSR2))
	waitFor(t, "the failed upgrade in the log", func() bool {
		return strings.Contains(p.log(), `"msg":"upgrade failed; this process keeps serving"`)
	})
	require.Equal(t, old, p.pid())
	held.requireServed(t, p)
	require.NoError(t, p.selectOne(context.Background(), true))
}

// 'sluice upgrade --pidfile' signals the process and reports the new pid.
func TestUpgradeCommand(t *testing.T) {
	p := startUpgradable(t, nil)
	old := p.pid()
	out, err := runCLI(t, "upgrade", "--pidfile", p.pidfile)
	require.NoError(t, err, out)
	require.Contains(t, out, fmt.Sprintf("(was %d)", old))
	waitFor(t, "the old process to exit", func() bool { return gone(old) })
	require.NoError(t, p.selectOne(context.Background(), false))
}

// POST /api/upgrade answers once the new process serves (or why not) and
// the old one then hands over; a failing binary is reported to the caller.
func TestUpgradeByAPI(t *testing.T) {
	p := startUpgradable(t, nil)
	old := p.pid()
	status, body := p.postAPI(t, "upgrade")
	require.Equal(t, http.StatusOK, status, body)
	waitFor(t, "the old process to exit", func() bool { return gone(old) })
	require.NotEqual(t, old, p.pid())
	require.NoError(t, p.selectOne(context.Background(), false))

	failing := startUpgradable(t, nil, "--upgrade-binary", "/bin/false")
	status, body = failing.postAPI(t, "upgrade")
	require.Equal(t, http.StatusConflict, status, body)
	require.Contains(t, body, "UPGRADE failed")
	require.NoError(t, failing.selectOne(context.Background(), false))
}

func (p *upgradeProc) postAPI(t *testing.T, command string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/api/%s", p.admin, command), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer upgrade-test-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// heldClients are idle clients connected before an upgrade: one in
// session mode (appdb), one in transaction mode (appdb_tx).
type heldClients struct {
	conns []*pgconn.PgConn
	ports map[int]bool
}

func (p *upgradeProc) holdIdleClients(t *testing.T) heldClients {
	h := heldClients{conns: []*pgconn.PgConn{p.connect(t, pgtest.AppDB, "held"), p.connect(t, pgtest.AppDB+"_tx", "held")}}
	h.ports = p.waitClientPorts(t, "held", len(h.conns))
	return h
}

// requireServed checks the serving process has the same connections and
// each still answers.
func (h heldClients) requireServed(t *testing.T, p *upgradeProc) {
	require.Equal(t, h.ports, p.clientPorts(t, "held"), "the same client connections")
	for i, c := range h.conns {
		_, err := c.Exec(context.Background(), "SELECT 1").ReadAll()
		require.NoError(t, err, "held client %d (connected before the upgrade) is still served", i)
	}
}

func (p *upgradeProc) connect(t *testing.T, db, app string) *pgconn.PgConn {
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable application_name=%s",
		p.port, pgtest.AppUser, pgtest.AppPassword, db, app)
	c, err := pgconn.Connect(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// fakeSystemd is a NOTIFY_SOCKET that notes who sent what (SO_PASSCRED).
type fakeSystemd struct {
	path  string
	conn  *net.UnixConn
	mu    sync.Mutex
	got   map[int][]string
	pings map[int]int // WATCHDOG=1 by pid
	done  chan struct{}
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	f := &fakeSystemd{path: filepath.Join(t.TempDir(), "notify"), got: map[int][]string{}, pings: map[int]int{}, done: make(chan struct{})}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"})
	require.NoError(t, err)
	f.conn = c
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1) })
	go func() {
		defer close(f.done)
		buf, oob := make([]byte, 4096), make([]byte, 1024)
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			pid := 0
			if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for i := range msgs {
					if cred, err := syscall.ParseUnixCredentials(&msgs[i]); err == nil {
						pid = int(cred.Pid)
					}
				}
			}
			f.mu.Lock()
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if strings.HasPrefix(line, "MONOTONIC_USEC=") {
					line = "MONOTONIC_USEC" // its value is the clock's
				}
				if line == "WATCHDOG=1" {
					f.pings[pid]++
				} else {
					f.got[pid] = append(f.got[pid], line)
				}
			}
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-f.done })
	return f
}

// messages stops listening and returns what each pid sent, in order.
func (f *fakeSystemd) messages(t *testing.T) map[int][]string {
	f.conn.Close()
	<-f.done
	return f.got
}

// The console's UPGRADE: the console session that typed it ends with the
// old process, which exits at once although shutdown_timeout is long
// (the clients that do not move are served until they leave; a console
// session is not one of them).
func TestUpgradeByConsoleEndsTheConsoleSession(t *testing.T) {
	p := startSluice(t, sluiceOpts{shutdownTimeout: "10m"})
	old := p.pid()
	adm := p.connect(t, "sluice", "console")
	_, err := adm.Exec(context.Background(), "UPGRADE").ReadAll()
	require.NoError(t, err)
	waitFor(t, "the old process to exit", func() bool { return gone(old) })
	require.NotEqual(t, old, p.pid())
	require.NoError(t, p.selectOne(context.Background(), false))
}
