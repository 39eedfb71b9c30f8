//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// sluiceBinary builds this package's binary into a temp dir: the upgrade
// tests run real sluice processes. ldflags, if any, go to go build.
func sluiceBinary(t *testing.T, ldflags ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice")
	args := []string{"build", "-o", path}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return path
}

// upgradeProc is a running sluice started by a test, and what it started
// after it (the pid file names whichever serves).
type upgradeProc struct {
	t       *testing.T
	cfgPath string
	pidfile string
	logPath string
	port    int
	admin   int
	sockDir string
	first   *exec.Cmd
	exited  chan error // the first process's exit
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sluiceOpts varies the sluice a test starts; the zero value is what
// startUpgradable runs.
type sluiceOpts struct {
	bin             string   // the binary; "" builds this package
	env             []string // added to the test's environment
	args            []string // after 'run --config --pidfile'
	poolMode        string   // appdb's; "" is the default (session)
	maxSize         int      // appdb's pool; 0 means 40
	shutdownTimeout string   // "" means 20s
	extraConfig     string   // appended to the configuration (a cluster section)
}

// upgradeConfig serves appdb (pool mode and size from o) and appdb_tx, the
// same database in transaction mode.
func upgradeConfig(pgPort, port, admin int, sockDir string, o sluiceOpts) string {
	mode, size, shutdown := "", o.maxSize, o.shutdownTimeout
	if o.poolMode != "" {
		mode = "\n    pool_mode: " + o.poolMode
	}
	if size == 0 {
		size = 40
	}
	if shutdown == "" {
		shutdown = "20s"
	}
	return fmt.Sprintf(`listen:
  address: 127.0.0.1:%d
  socket_dir: %s
admin:
  address: 127.0.0.1:%d
  api_token: upgrade-test-token
  users: [%s]
log:
  format: json
shutdown_timeout: %s
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]%s
    pool:
      min_size: 0
      max_size: %d
  %s_tx:
    hosts: ["127.0.0.1:%d"]
    dbname: %s
    pool_mode: transaction
    pool:
      min_size: 0
      max_size: 10
`, port, sockDir, admin, pgtest.AppUser, shutdown, pgtest.AppUser, pgtest.AppPassword,
		pgtest.AppDB, pgPort, mode, size, pgtest.AppDB, pgPort, pgtest.AppDB) + o.extraConfig
}

// startUpgradable starts 'sluice run --pidfile' with extra flags and env,
// and waits until it serves.
func startUpgradable(t *testing.T, env []string, extra ...string) *upgradeProc {
	return startSluice(t, sluiceOpts{env: env, args: extra})
}

// startSluice starts 'sluice run --pidfile' as o says, and waits until it
// serves; the test's cleanup stops whichever process serves then.
func startSluice(t *testing.T, o sluiceOpts) *upgradeProc {
	bin := o.bin
	if bin == "" {
		bin = sluiceBinary(t)
	}
	pgPort := pgtest.Cluster(t).Port
	dir := t.TempDir()
	p := &upgradeProc{t: t, cfgPath: filepath.Join(dir, "sluice.yaml"), pidfile: filepath.Join(dir, "sluice.pid"),
		logPath: filepath.Join(dir, "sluice.log"), port: freeTCPPort(t), admin: freeTCPPort(t), sockDir: dir, exited: make(chan error, 1)}
	require.NoError(t, os.WriteFile(p.cfgPath, []byte(upgradeConfig(pgPort, p.port, p.admin, dir, o)), 0o600))
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer logf.Close() // the processes hold their own descriptors of it
	args := append([]string{"run", "--config", p.cfgPath, "--pidfile", p.pidfile}, o.args...)
	p.first = exec.Command(bin, args...)
	p.first.Env = append(os.Environ(), o.env...)
	p.first.Stdout, p.first.Stderr = logf, logf
	require.NoError(t, p.first.Start())
	go func() { p.exited <- p.first.Wait() }()
	t.Cleanup(p.stop)
	p.waitServing(p.first.Process.Pid)
	return p
}

// stop ends whichever process serves now, and waits for it.
func (p *upgradeProc) stop() {
	if pid, err := daemon.ReadPidfile(p.pidfile); err == nil {
		syscall.Kill(pid, syscall.SIGTERM)
		waitFor(p.t, "the serving process to exit", func() bool { return gone(pid) })
	}
	p.first.Process.Kill()
	if p.t.Failed() {
		b, _ := os.ReadFile(p.logPath)
		p.t.Logf("sluice log:\n%s", b)
	}
}

// pid is the serving process's, as the pid file says.
func (p *upgradeProc) pid() int {
	pid, err := daemon.ReadPidfile(p.pidfile)
	require.NoError(p.t, err)
	return pid
}

// waitServing waits until the pid file names pid and a client gets an answer.
func (p *upgradeProc) waitServing(pid int) {
	waitFor(p.t, fmt.Sprintf("pid %d to serve", pid), func() bool {
		got, err := daemon.ReadPidfile(p.pidfile)
		return err == nil && got == pid
	})
	require.NoError(p.t, p.selectOne(context.Background(), false))
}

// upgrade sends SIGUSR2 and waits until another process serves and the
// old one is gone; it returns the new pid.
func (p *upgradeProc) upgrade() int {
	old := p.pid()
	require.NoError(p.t, syscall.Kill(old, syscall.SIGUSR2))
	waitFor(p.t, fmt.Sprintf("a process other than %d in the pid file", old), func() bool {
		pid, err := daemon.ReadPidfile(p.pidfile)
		return err == nil && pid != old
	})
	waitFor(p.t, fmt.Sprintf("old pid %d to exit", old), func() bool { return gone(old) })
	return p.pid()
}

func (p *upgradeProc) log() string {
	b, err := os.ReadFile(p.logPath)
	require.NoError(p.t, err)
	return string(b)
}

// selectOne opens a connection (TCP, or the Unix socket), runs SELECT 1
// and closes it.
func (p *upgradeProc) selectOne(ctx context.Context, unix bool) error {
	host := "127.0.0.1"
	if unix {
		host = p.sockDir
	}
	dsn := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=30",
		host, p.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, "SELECT 1").ReadAll()
	return err
}

// clientLoop keeps opening connections and running SELECT 1 on
// goroutines of its own until stop; it counts successes and keeps the
// errors.
type clientLoop struct {
	ok     atomic.Int64
	mu     sync.Mutex
	errs   []error
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startClientLoop(p *upgradeProc, workers int) *clientLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &clientLoop{cancel: cancel}
	for i := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				if err := p.selectOne(context.Background(), i%2 == 1); err != nil {
					l.mu.Lock()
					l.errs = append(l.errs, err)
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

// waitMore waits until n more connections succeeded.
func (l *clientLoop) waitMore(t *testing.T, n int64) {
	target := l.ok.Load() + n
	waitFor(t, "clients to keep being served", func() bool { return l.ok.Load() >= target })
}

// stop ends the loop and fails t if any connection failed.
func (l *clientLoop) stop(t *testing.T) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.errs); n > 0 {
		t.Fatalf("%d of %d connection attempts failed; the first: %v", n, int64(n)+l.ok.Load(), l.errs[0])
	}
}

// gone reports whether pid has exited (a zombie counts: it serves nobody).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) != nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// waitFor polls cond; the bound is generous (a loaded machine is slow),
// the test waits on the condition, not on time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
