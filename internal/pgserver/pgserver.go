// Package pgserver starts and stops a throwaway local PostgreSQL cluster for
// tests, `sluice demo` and the benchmark suite.
//
// A cluster lives in a fresh temporary directory (data dir, socket dir and
// server log) that Stop deletes. It is tuned for speed, not durability
// (fsync=off, ...), listens on 127.0.0.1 plus a private unix socket, trusts
// the superuser "postgres" and requires passwords from everyone else.
//
// Processes: the postmaster is daemonised by pg_ctl and is not a child
// goroutine or process of ours; Stop shuts it down. The package starts no
// goroutines that outlive a call. If the calling process dies without Stop,
// a watchdog process stops the server and removes its directory
// (watchdog.go).
//
// Root: initdb refuses to run as root, so when euid is 0 the server tools run
// as the "postgres" OS user and the directory tree is chowned to it.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Options configure Start. The zero value is a good default.
type Options struct {
	Dir      string            // parent dir for data+socket; "" = os.TempDir(). Start creates a fresh subdir that Stop removes.
	Port     int               // 0 = pick a free port (retrying on a clash); else that exact port, no retry
	Settings map[string]string // extra postgresql.conf settings, applied after the defaults; "port" and "unix_socket_directories" are rejected
	Log      io.Writer         // receives command output and the server log tail on failure; nil = discarded (still included in errors)
	// StartTimeout bounds each pg_ctl start/stop wait; 0 = 60s.
	StartTimeout time.Duration
}

// Cluster is a running server. Its methods are safe for concurrent use.
type Cluster struct {
	Host      string // "127.0.0.1"
	Port      int
	SocketDir string // unix_socket_directories (psql -h SocketDir -p Port)
	DataDir   string
	BinDir    string
	LogFile   string // server log (pg_ctl -l)

	root     string // temp dir created by Start; removed by Stop
	owner    *owner
	settings map[string]string // Options.Settings, rewritten on every (re)start
	timeout  time.Duration
	dog      *watchdog // stops the server if this process dies without Stop
	stopOnce sync.Once
	stopErr  error
}

const maxPortAttempts = 5

// Start runs initdb and starts a server. On error nothing is left running and
// the directory is removed.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := validateSettings(opts.Settings); err != nil {
		return nil, err
	}
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	own, err := serverOwner()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(opts.Dir, "sluice-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	c := &Cluster{
		Host:      "127.0.0.1",
		SocketDir: filepath.Join(root, "sock"),
		DataDir:   filepath.Join(root, "data"),
		BinDir:    bin,
		LogFile:   filepath.Join(root, "data", "server.log"),
		root:      root,
		owner:     own,
		settings:  opts.Settings,
		timeout:   opts.StartTimeout,
	}
	if c.timeout <= 0 {
		c.timeout = 60 * time.Second
	}
	if c.dog, err = startWatchdog(c.DataDir, root); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	if err := c.start(ctx, opts); err != nil {
		if opts.Log != nil {
			fmt.Fprintln(opts.Log, err)
		}
		if serr := c.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	if err := c.prepareRoot(); err != nil {
		return err
	}
	if _, err := c.owner.run(ctx, c.root, filepath.Join(c.BinDir, "initdb"),
		"-D", c.DataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return err
	}
	if err := writeInitialConf(c.DataDir, c.owner); err != nil {
		return err
	}
	return c.listen(ctx, opts.Port)
}

// listen starts the postmaster on fixedPort, or on a free port (retrying
// on a clash) when fixedPort is 0.
func (c *Cluster) listen(ctx context.Context, fixedPort int) error {
	for attempt := 1; ; attempt++ {
		port := fixedPort
		if port == 0 {
			p, err := pickPort()
			if err != nil {
				return err
			}
			port = p
		}
		c.Port = port
		err := c.startOnce(ctx, c.settings)
		if err == nil {
			return nil
		}
		if fixedPort != 0 || attempt >= maxPortAttempts || !errors.Is(err, errPortInUse) || ctx.Err() != nil {
			return err
		}
	}
}

var errPortInUse = errors.New("port in use")

func (c *Cluster) startOnce(ctx context.Context, settings map[string]string) error {
	if err := writePortConf(c.DataDir, c.owner, c.Port, c.SocketDir, settings); err != nil {
		return err
	}
	_ = os.Remove(c.LogFile) // each attempt's log stands alone, for clash detection
	_, err := c.owner.run(ctx, c.root, filepath.Join(c.BinDir, "pg_ctl"), "start", "-w",
		"-t", fmt.Sprint(int(c.timeout.Seconds())), "-D", c.DataDir, "-l", c.LogFile)
	if err == nil {
		return nil
	}
	tail := c.logTail(40)
	if strings.Contains(tail, "Address already in use") {
		err = fmt.Errorf("%w (%w)", err, errPortInUse)
	}
	// pg_ctl may give up waiting while the postmaster still comes up.
	c.kill()
	return fmt.Errorf("%w\n--- server log tail (%s) ---\n%s", err, c.LogFile, tail)
}

// logTail returns the last n lines of the server log.
func (c *Cluster) logTail(n int) string {
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pickPort is freePort; tests swap it to force a clash.
var pickPort = freePort

// freePort asks the kernel for a free port. It can be taken again before the
// server binds it; Start retries on that clash.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgserver: %w", err)
	}
	return port, nil
}
