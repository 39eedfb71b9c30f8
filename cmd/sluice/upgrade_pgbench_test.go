//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// upgradeSeconds is how long the pgbench runs of the acceptance tests
// last: $SLUICE_TEST_UPGRADE_SECONDS, by default 15 (the 60 s run
// is the same test with the variable set).
func upgradeSeconds(t *testing.T) int {
	return envInt(t, "SLUICE_TEST_UPGRADE_SECONDS", 15)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "$%s", name)
	require.Positive(t, n, "$%s", name)
	return n
}

// pgbenchRun is a pgbench process against a sluice; its output (stdout
// and stderr together) is read once it ended.
type pgbenchRun struct {
	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{}
	err  error // the exit, once done is closed
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startPgbench runs pgbench (no vacuum: the tables are the fixtures')
// against p's appdb (or db); the test's cleanup kills it if it runs on.
func startPgbench(t *testing.T, p *upgradeProc, db string, args ...string) *pgbenchRun {
	all := append([]string{"-n", "-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-U", pgtest.AppUser}, args...)
	r := &pgbenchRun{cmd: exec.Command("pgbench", append(all, db)...), done: make(chan struct{})}
	r.cmd.Env = append(os.Environ(), "PGPASSWORD="+pgtest.AppPassword, "PGAPPNAME=pgbench")
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	require.NoError(t, r.cmd.Start())
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

func (r *pgbenchRun) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

var processedLine = regexp.MustCompile(`number of transactions actually processed: (\d+)(?:/(\d+))?`)

// requireClean waits for pgbench and checks it ran every client to the
// end: exit 0, no client aborted (pgbench never reconnects: an aborted
// client is a dropped connection), 0 failed transactions. It returns the
// transactions processed.
func (r *pgbenchRun) requireClean(t *testing.T, clients int) int {
	t.Helper()
	<-r.done
	out := r.out.String()
	t.Logf("pgbench:\n%s", out)
	require.NoError(t, r.err, "pgbench exits 0")
	require.Contains(t, out, fmt.Sprintf("number of clients: %d\n", clients))
	require.Contains(t, out, "number of failed transactions: 0 ")
	require.NotContains(t, out, "aborted")
	m := processedLine.FindStringSubmatch(out)
	require.NotNil(t, m, "the transactions processed line")
	n, _ := strconv.Atoi(m[1])
	require.Positive(t, n)
	if m[2] != "" {
		require.Equal(t, m[2], m[1], "every transaction asked for (-t) was processed")
	}
	return n
}

// freshHTTP opens a connection per request: a kept-alive one would stay
// with the old process after an upgrade.
var freshHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// clients is /api/clients of the process serving now.
func (p *upgradeProc) clients(t *testing.T) []console.Client {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/api/clients", p.admin), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer upgrade-test-token")
	resp, err := freshHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var cs []console.Client
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&cs))
	return cs
}

// clientPorts is the set of the client-side ports of the logged-in
// clients of application app that the serving process has.
func (p *upgradeProc) clientPorts(t *testing.T, app string) map[int]bool {
	ports := map[int]bool{}
	for _, c := range p.clients(t) {
		if c.AppName == app && c.State != "login" {
			ports[c.Port] = true
		}
	}
	return ports
}

// waitClientPorts waits until the serving process has n clients of app
// logged in, and returns their ports.
func (p *upgradeProc) waitClientPorts(t *testing.T, app string, n int) map[int]bool {
	t.Helper()
	var ports map[int]bool
	waitFor(t, fmt.Sprintf("%d %s clients", n, app), func() bool {
		ports = p.clientPorts(t, app)
		return len(ports) == n
	})
	return ports
}

// timed logs how long f took.
func timed(t *testing.T, what string, f func()) {
	start := time.Now()
	f()
	t.Logf("%s took %s", what, time.Since(start).Round(time.Millisecond))
}

// signalUpgrade sends SIGUSR2 to the serving process.
func (p *upgradeProc) signalUpgrade() error {
	return syscall.Kill(p.pid(), syscall.SIGUSR2)
}

// getAPI is GET /api/view of the serving process.
func (p *upgradeProc) getAPI(t *testing.T, view string) (int, string) {
	resp, err := freshHTTP.Get(fmt.Sprintf("http://127.0.0.1:%d/api/%s", p.admin, view))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
