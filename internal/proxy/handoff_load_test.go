package proxy_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// Clients in a loop of transactions (BEGIN, a statement, COMMIT, each a
// round trip: idle in a transaction between them) are handed over
// between two transactions while they run, in transaction and in
// session mode: no transaction fails, no client reconnects, and each
// runs transactions on the new sluice after the old one is shut down.
func TestHandOffUnderLoad(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) { testHandOffUnderLoad(t, mode) })
	}
}

func testHandOffUnderLoad(t *testing.T, mode string) {
	const clients = 50
	text := handOffConfig(t, mode)
	old, next := startSluice(t, text), startSluice(t, text)
	ctx := context.Background()
	var moved []*movedClient
	for range clients {
		c := connectTo(t, old, "")
		moved = append(moved, &movedClient{c: c, port: c.Conn().LocalAddr().String()})
	}
	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		mu      sync.Mutex
		failed  []error
		after   = make([]int, clients) // transactions since the old sluice was shut down
		oldGone = make(chan struct{})
	)
	for i, m := range moved {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				for _, sql := range []string{"BEGIN", "SELECT " + strconv.Itoa(n), "COMMIT"} {
					if err = m.c.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err; err != nil {
						break
					}
				}
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
					return
				}
				select {
				case <-oldGone:
					mu.Lock()
					after[i]++
					mu.Unlock()
				default:
				}
			}
		}()
	}
	waitFor(t, "transactions on the old sluice", func() bool {
		return metricValue(t, old.Metrics().ClientSessions) == clients
	})
	began := time.Now()
	handOff(t, old, sendTo(t, next))
	t.Logf("%d busy clients handed over in %v", clients, time.Since(began).Round(time.Millisecond))
	shutdownNow(old)
	close(oldGone)
	began = time.Now()
	waitFor(t, "every client to run transactions on the new sluice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(failed) > 0 {
			return true
		}
		for _, n := range after {
			if n < 3 {
				return false
			}
		}
		return true
	})
	t.Logf("every client ran 3 transactions on the new sluice within %v", time.Since(began).Round(time.Millisecond))
	close(stop)
	wg.Wait()
	require.Empty(t, failed)
	requireClientsAt(t, next, moved)
}

// pgbench (the default TPC-B-like script, prepared statements, 100
// transactions per client) against the old sluice, which hands its
// clients over in the middle of the run and is shut down: pgbench runs
// every transaction with none failed and no client aborted (it never
// reconnects: a lost connection aborts its client), in transaction and in
// session mode.
func TestHandOffPgbench(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			text := handOffConfig(t, mode)
			old, next := startSluice(t, text), startSluice(t, text)
			cmd := exec.Command("pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(old.Addr().(*net.TCPAddr).Port), "-U", pgtest.AppUser,
				"-n", "-M", "prepared", "-c", "50", "-j", "2", "-t", "100", pgtest.AppDB)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+pgtest.AppPassword)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			waitFor(t, "pgbench to run on the old sluice", func() bool { return xacts(old) >= 500 })
			began := time.Now()
			handOff(t, old, sendTo(t, next))
			t.Logf("50 pgbench clients handed over in %v, after %d transactions", time.Since(began).Round(time.Millisecond), xacts(old))
			shutdownNow(old)
			err := cmd.Wait()
			t.Logf("pgbench:\n%s", out.String())
			require.NoError(t, err)
			require.Contains(t, out.String(), "number of transactions actually processed: 5000/5000")
			require.Contains(t, out.String(), "number of failed transactions: 0 ")
			require.Positive(t, xacts(next), "transactions ran on the new sluice")
			waitFor(t, "pgbench's clients to leave the new sluice", func() bool { return len(next.Snapshot().Clients) == 0 })
		})
	}
}

// xacts is how many transactions srv's pools ran.
func xacts(srv *proxy.Server) uint64 {
	var n uint64
	for _, s := range srv.Snapshot().Stats {
		n += s.XactCount
	}
	return n
}
