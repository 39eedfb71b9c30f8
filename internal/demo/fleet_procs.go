package demo

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrMissingTool is returned by the fleet demo when etcd or HAProxy is
// not installed; the message says which package to install.
var ErrMissingTool = errors.New("demo: missing tool")

// findTool returns the path of the first of names found on PATH (or as
// an absolute path), or ErrMissingTool naming the Debian package.
func findTool(pkg string, names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s not found (looked for %s); install it, e.g. apt-get install --no-install-recommends %s",
		ErrMissingTool, names[0], strings.Join(names, ", "), pkg)
}

// child is a process the fleet demo started (etcd, HAProxy, a sluice)
// in its own process group, with its output in a log file. The demo
// owns it and must call stop (or kill) once; both wait for the exit and
// reap the whole group, so nothing outlives the demo.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been waited for
}

// startChild starts bin with args, its output appended to dir/name.log.
func startChild(dir, name, bin string, args ...string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("demo: starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the process group and waits for the process.
func (c *child) kill() {
	syscall.Kill(-c.pid(), syscall.SIGKILL)
	<-c.done
}

// stop asks the process to stop (SIGTERM), kills its group if it takes
// over 30 s, and waits for it. Stopping an exited child only reaps any
// process left in its group.
func (c *child) stop() {
	if !c.exited() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
		}
	}
	c.kill()
}

// log is the child's output so far.
func (c *child) log() string {
	data, _ := os.ReadFile(c.logPath)
	return string(data)
}

// logTail is the end of the child's output, for error messages.
func (c *child) logTail() string {
	s := c.log()
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

// waitUntil polls ready every 50 ms until it is true, the child exits,
// timeout passes or ctx ends.
func (c *child) waitUntil(ctx context.Context, what string, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ready() {
		if c.exited() {
			return fmt.Errorf("demo: %s exited before %s:\n%s", c.name, what, c.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %s not %s after %s:\n%s", c.name, what, timeout, c.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment
// ago: all n listeners are held open together.
func freePorts(n int) ([]int, error) {
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// startEtcd runs a single-member etcd with its data in dir and waits
// until /health says it is healthy. It returns the client endpoint.
func startEtcd(ctx context.Context, dir, bin string) (*child, string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", err
	}
	client := fmt.Sprintf("127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c, err := startChild(dir, "etcd", bin,
		"--name", "sluice-demo",
		"--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", "http://"+client,
		"--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "sluice-demo="+peer,
		"--initial-cluster-state", "new")
	if err != nil {
		return nil, "", err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	err = c.waitUntil(ctx, "healthy", time.Minute, func() bool { return httpOK(hc, "http://"+client+"/health", `"health":"true"`) })
	if err != nil {
		c.stop()
		return nil, "", err
	}
	return c, client, nil
}

// startHAProxy runs HAProxy in TCP mode balancing round robin over
// backends, as a fleet would be deployed: a TCP health check every
// 500 ms takes a backend out after 2 failed checks, and a connection
// refused by a backend is retried on another one (redispatch; nothing
// was sent to the refusing one). It returns the address clients connect
// to.
func startHAProxy(ctx context.Context, dir, bin string, backends []string) (*child, string, string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", "", err
	}
	addr, monitor := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
    maxconn 1024

defaults
    mode tcp
    timeout connect 5s
    retries 2
    option redispatch 1
    timeout client 1h
    timeout server 1h

frontend monitor
    mode http
    bind %s
    monitor-uri /
    stats enable
    stats uri /stats

frontend sluice
    bind %s
    default_backend sluices

backend sluices
    balance roundrobin
    default-server check inter 500ms fall 2 rise 2
`, monitor, addr)
	for i, b := range backends {
		fmt.Fprintf(&cfg, "    server sluice-%d %s\n", i+1, b)
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return nil, "", "", err
	}
	// -db: foreground, no master process.
	c, err := startChild(dir, "haproxy", bin, "-db", "-f", cfgPath)
	if err != nil {
		return nil, "", "", err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	err = c.waitUntil(ctx, "listening", time.Minute, func() bool { return httpOK(hc, "http://"+monitor+"/", "") })
	if err != nil {
		c.stop()
		return nil, "", "", err
	}
	return c, addr, "http://" + monitor + "/stats;csv", nil
}

// httpOK reports whether GET url answers 200 with a body containing want.
func httpOK(hc *http.Client, url, want string) bool {
	resp, err := hc.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK && strings.Contains(string(body), want)
}

// portOpen reports whether something accepts TCP connections on addr.
func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// backendStats is HAProxy's view of one backend server.
type backendStats struct {
	status       string // UP, DOWN, ...
	redispatches int    // wredis: connections it refused that went to another server
}

// haproxyStats reads the statistics of server in HAProxy's CSV page.
func haproxyStats(url, server string) (backendStats, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(url)
	if err != nil {
		return backendStats{}, err
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(io.LimitReader(resp.Body, 1<<20)).ReadAll()
	if err != nil || len(rows) == 0 {
		return backendStats{}, fmt.Errorf("demo: HAProxy's statistics: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.TrimPrefix(name, "# ")] = i
	}
	get := func(r []string, name string) string {
		if i, ok := col[name]; ok && i < len(r) {
			return r[i]
		}
		return ""
	}
	num := func(r []string, name string) int { n, _ := strconv.Atoi(get(r, name)); return n }
	for _, r := range rows[1:] {
		if get(r, "svname") == server {
			return backendStats{status: get(r, "status"), redispatches: num(r, "wredis")}, nil
		}
	}
	return backendStats{}, fmt.Errorf("demo: no server %s in HAProxy's statistics", server)
}
