// Command idleclients opens N authenticated client connections to a pooler
// (scenario 7 of `make bench`), leaves them idle, and reports the pooler's
// memory per idle client: VmRSS of -pid after all clients logged in, divided
// by N, and the growth over the RSS before the first client.
//
// It prints one JSON object on stdout:
//
//	{"clients":10000,"rss_before_kb":...,"rss_after_kb":...,"kb_per_client":...,
//	 "kb_delta_per_client":...,"connect_seconds":...}
//
// Each connection runs `SELECT 1` once, so it is fully established (a pooler
// may defer work to the first query), then sits idle. The process needs a
// file descriptor per client: raise `ulimit -n` first (bench/run.sh does).
// Logins run on -concurrency goroutines; all connections are closed before
// exit.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

type result struct {
	Clients        int     `json:"clients"`
	RSSBeforeKB    int64   `json:"rss_before_kb"`
	RSSAfterKB     int64   `json:"rss_after_kb"`
	KBPerClient    float64 `json:"kb_per_client"`
	KBDeltaPer     float64 `json:"kb_delta_per_client"`
	ConnectSeconds float64 `json:"connect_seconds"`
}

func main() {
	dsn := flag.String("dsn", "", "libpq connection string of the pooler")
	n := flag.Int("n", 10000, "idle clients to open")
	pid := flag.Int("pid", 0, "pooler process whose RSS is measured")
	conc := flag.Int("concurrency", 32, "logins in flight at once")
	settle := flag.Duration("settle", 2*time.Second, "wait after the last login before reading RSS")
	flag.Parse()
	if *dsn == "" || *pid <= 0 || *n <= 0 || *conc <= 0 {
		fmt.Fprintln(os.Stderr, "usage: idleclients -dsn DSN -pid PID [-n 10000] [-concurrency 32]")
		os.Exit(2)
	}
	r, err := run(context.Background(), *dsn, *n, *pid, *conc, *settle)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idleclients:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func run(ctx context.Context, dsn string, n, pid, conc int, settle time.Duration) (result, error) {
	before, err := rssKB(pid)
	if err != nil {
		return result{}, err
	}
	conns := make([]*pgconn.PgConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	began := time.Now()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := connect(ctx, dsn)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("client %d: %w", i, err) })
					next.Store(int64(n)) // stop the others
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	elapsed := time.Since(began)
	time.Sleep(settle) // let the pooler finish post-login work
	after, err := rssKB(pid)
	if err != nil {
		return result{}, err
	}
	return result{
		Clients: n, RSSBeforeKB: before, RSSAfterKB: after,
		KBPerClient:    float64(after) / float64(n),
		KBDeltaPer:     float64(after-before) / float64(n),
		ConnectSeconds: elapsed.Seconds(),
	}, nil
}

func connect(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		c.Close(context.Background())
		return nil, err
	}
	return c, nil
}

// rssKB reads VmRSS of pid from /proc, in kB.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
