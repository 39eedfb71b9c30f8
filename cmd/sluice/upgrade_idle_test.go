//go:build linux

package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// idleClient is one transaction-pooled connection with a setting and a
// prepared statement of its own.
type idleClient struct {
	conn    *pgconn.PgConn
	workMem string // what SHOW work_mem answers
	n       int    // the statement answers n+1
}

// 1,000 idle transaction-mode clients survive 10 upgrades in a row with
// their settings and prepared statements ($SLUICE_TEST_UPGRADE_IDLE_CLIENTS
// changes the count; 1,000 take about 10 s here, so that is the default).
// Each keeps its TCP connection (its port) throughout.
func TestUpgradeIdleClientsSurviveTenUpgrades(t *testing.T) {
	n := envInt(t, "SLUICE_TEST_UPGRADE_IDLE_CLIENTS", 1000)
	p := startSluice(t, sluiceOpts{poolMode: "transaction", maxSize: 20})
	var clients []*idleClient
	timed(t, fmt.Sprintf("connecting %d clients", n), func() { clients = openIdleClients(t, p, n) })
	ports := p.waitClientPorts(t, "idle-accept", n)
	for i := range 10 {
		old := p.pid()
		timed(t, fmt.Sprintf("upgrade %d", i+1), func() { p.upgrade() })
		require.NotEqual(t, old, p.pid())
		require.Equal(t, ports, p.clientPorts(t, "idle-accept"), "upgrade %d: the same %d connections", i+1, n)
		timed(t, fmt.Sprintf("checking %d clients", n), func() { checkIdleClients(t, clients) })
	}
}

// openIdleClients connects n clients to appdb, each with its own work_mem
// and a statement prepared with pgconn (Parse of a named statement).
func openIdleClients(t *testing.T, p *upgradeProc, n int) []*idleClient {
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable application_name=idle-accept connect_timeout=60",
		p.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	clients := make([]*idleClient, n)
	forEach(t, n, func(i int) error {
		ctx := context.Background()
		c, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		ic := &idleClient{conn: c, workMem: strconv.Itoa(65+2*i) + "kB", n: i} // odd: never shown as MB
		clients[i] = ic
		if _, err := c.Exec(ctx, "SET work_mem = '"+ic.workMem+"'").ReadAll(); err != nil {
			return err
		}
		_, err = c.Prepare(ctx, "plus_one", "SELECT $1::int + 1", nil)
		return err
	})
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				c.conn.Close(context.Background())
			}
		}
	})
	return clients
}

// checkIdleClients asks every client its setting and executes its
// statement prepared before the upgrades.
func checkIdleClients(t *testing.T, clients []*idleClient) {
	forEach(t, len(clients), func(i int) error {
		ctx, c := context.Background(), clients[i]
		res, err := c.conn.Exec(ctx, "SHOW work_mem").ReadAll()
		if err != nil {
			return fmt.Errorf("client %d: SHOW work_mem: %w", i, err)
		}
		if got := string(res[0].Rows[0][0]); got != c.workMem {
			return fmt.Errorf("client %d: work_mem is %s, set %s", i, got, c.workMem)
		}
		r := c.conn.ExecPrepared(ctx, "plus_one", [][]byte{[]byte(strconv.Itoa(c.n))}, nil, nil).Read()
		if r.Err != nil {
			return fmt.Errorf("client %d: EXECUTE of the statement prepared before: %w", i, r.Err)
		}
		if got, want := string(r.Rows[0][0]), strconv.Itoa(c.n+1); got != want {
			return fmt.Errorf("client %d: the statement answered %s, want %s", i, got, want)
		}
		return nil
	})
}

// forEach runs f(0..n-1) on 8 goroutines and fails t with the first error.
func forEach(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	require.NoError(t, first)
}
