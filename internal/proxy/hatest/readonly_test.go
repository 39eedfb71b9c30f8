package hatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// roSluice is sluice with a read-only listener in front of a replica set:
// appdb in transaction mode, appdb_session (the same server database) in
// session mode, appdb_refuse in transaction mode with read_only_fallback
// refuse; every one with max_replica_lag 1s.
type roSluice struct {
	srv        *proxy.Server
	rw, ro     int // listener ports
	primary    int // server ports
	standbys   []int
	standbyDBs []string
}

func startReadOnly(t *testing.T, set *pgtest.Set) *roSluice {
	t.Helper()
	var hosts []string
	r := &roSluice{primary: set.Primary.Port}
	for _, c := range set.All() {
		hosts = append(hosts, strconv.Quote("127.0.0.1:"+strconv.Itoa(c.Port)))
	}
	for _, c := range set.Standbys {
		r.standbys = append(r.standbys, c.Port)
	}
	db := func(name, mode, extra string) string {
		return fmt.Sprintf(`  %s:
    dbname: %s
    hosts: [%s]
    pool_mode: %s
    health_check_interval: 200ms
    max_replica_lag: 1s
    pool: {max_size: 10, borrow_timeout: 30s}
    backend: {dial_timeout: 2s}
    failover: {user: %s}
%s`, name, pgtest.AppDB, strings.Join(hosts, ", "), mode, pgtest.MonitorUser, extra)
	}
	text := fmt.Sprintf(`listen: {address: "127.0.0.1:0", read_only_address: "127.0.0.1:0"}
admin: {address: ""}
log: {level: info}
shutdown_timeout: 5s
users:
  - {name: %s, password: %s}
  - {name: %s, password: %s}
databases:
`, pgtest.AppUser, pgtest.AppPassword, pgtest.MonitorUser, pgtest.MonitorPassword) +
		db(pgtest.AppDB, "transaction", "") +
		db("appdb_session", "session", "") +
		db("appdb_refuse", "transaction", "    read_only_fallback: refuse\n")
	srv, _ := startText(t, text)
	r.srv = srv
	r.rw = srv.Addr().(*net.TCPAddr).Port
	r.ro = srv.ReadOnlyAddr().(*net.TCPAddr).Port
	return r
}

func dsnFor(port int, db, extra string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=10 %s",
		port, pgtest.AppUser, pgtest.AppPassword, db, extra)
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRoles waits until every monitored database sees the primary and
// the standbys whose ports are given with the roles expected.
func (r *roSluice) waitRoles(t *testing.T, standbys ...int) {
	for _, db := range []string{pgtest.AppDB, "appdb_session", "appdb_refuse"} {
		waitFor(t, db+" roles", func() bool {
			hs := r.hosts(t, db)
			if hs[hostName(r.primary)].role != "primary" {
				return false
			}
			for _, p := range standbys {
				if h := hs[hostName(p)]; h.role != "standby" || !h.up {
					return false
				}
			}
			return true
		})
	}
}

// where is what one read transaction saw.
type where struct {
	port       int
	inRecovery bool
	readOnly   bool // default_transaction_read_only
}

const whereSQL = "SELECT inet_server_port(), pg_is_in_recovery(), current_setting('default_transaction_read_only')"

func query(ctx context.Context, c *pgconn.PgConn) (where, error) {
	res, err := c.Exec(ctx, whereSQL).ReadAll()
	if err != nil {
		return where{}, err
	}
	row := res[0].Rows[0]
	port, _ := strconv.Atoi(string(row[0]))
	return where{port: port, inRecovery: string(row[1]) == "t", readOnly: string(row[2]) == "on"}, nil
}

// spread runs n read transactions through port over `clients` connections
// at once and counts them by server port.
func spread(t *testing.T, port int, db string, n, clients int) map[int]int {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for k := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgconn.Connect(ctx, dsnFor(port, db, ""))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			for i := k; i < n; i += clients {
				w, err := query(ctx, c)
				if err != nil {
					errs <- err
					return
				}
				if !w.readOnly {
					errs <- fmt.Errorf("a read-only session on port %d is not read-only by default", w.port)
					return
				}
				mu.Lock()
				counts[w.port]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return counts
}

// sessions opens n sessions one after the other through port and
// counts the server port each was served by.
func sessions(t *testing.T, port int, db, extra string, n int) map[int]int {
	t.Helper()
	ctx := context.Background()
	counts := map[int]int{}
	for range n {
		c, err := pgconn.Connect(ctx, dsnFor(port, db, extra))
		require.NoError(t, err)
		w, err := query(ctx, c)
		require.NoError(t, err)
		c.Close(ctx)
		counts[w.port]++
	}
	return counts
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestReadOnlyEndpoint is issue 6's acceptance point 3: the read-only
// listener spreads 1,000 read transactions over two standbys, stops using
// a standby whose replay is paused past max_replica_lag, and falls back to
// the primary (read-only by default) when both standbys are down; with
// read_only_fallback refuse it refuses with 57P03 instead.
func TestReadOnlyEndpoint(t *testing.T) {
	set := pgtest.ReplicaSet(t, 2)
	ctx := context.Background()
	require.NoError(t, set.Primary.ExecDB(ctx, pgtest.AppDB, "CREATE TABLE ro_ticks (n int); GRANT ALL ON ro_ticks TO "+pgtest.AppUser))
	r := startReadOnly(t, set)
	s0, s1 := r.standbys[0], r.standbys[1]
	r.waitRoles(t, s0, s1)

	// 1,000 read transactions over 10 clients in transaction mode: both
	// standbys serve, the primary none.
	counts := spread(t, r.ro, pgtest.AppDB, 1000, 10)
	t.Logf("1000 read transactions: standby %d: %d, standby %d: %d, primary: %d", s0, counts[s0], s1, counts[s1], counts[r.primary])
	require.Equal(t, 1000, counts[s0]+counts[s1]+counts[r.primary])
	require.Positive(t, counts[s0], "standby %d got no read transactions", s0)
	require.Positive(t, counts[s1], "standby %d got no read transactions", s1)
	require.Zero(t, counts[r.primary], "the primary served read transactions while both standbys were healthy")
	hs := r.hosts(t, pgtest.AppDB)
	require.Positive(t, hs[hostName(s0)].roConns, "sluice_server_readonly_connections for standby %d", s0)
	require.Positive(t, hs[hostName(s1)].roConns, "sluice_server_readonly_connections for standby %d", s1)
	require.Zero(t, hs[hostName(r.primary)].roConns)

	// Session mode: each session gets a standby; sessions take turns.
	sess := sessions(t, r.ro, "appdb_session", "", 20)
	t.Logf("20 read-only sessions: %v", sess)
	require.Zero(t, sess[r.primary])
	require.Positive(t, sess[s0])
	require.Positive(t, sess[s1])

	// The main listener: read-write as before, unless the client asks for
	// a standby through options (libpq's PGOPTIONS).
	main := sessions(t, r.rw, pgtest.AppDB, "", 3)
	require.Equal(t, map[int]int{r.primary: 3}, main)
	asked := sessions(t, r.rw, pgtest.AppDB, "options='-c target_session_attrs=standby'", 10)
	require.Zero(t, asked[r.primary], "target_session_attrs=standby on the main listener reached the primary")
	_, err := pgconn.Connect(ctx, dsnFor(r.ro, pgtest.AppDB, "options='-c target_session_attrs=read-write'"))
	require.Equal(t, "08004", sqlState(err), "read-write asked on the read-only listener: %v", err)

	// Standby 0's replay paused while the primary writes: once its lag
	// passes max_replica_lag it gets no more read-only work.
	require.NoError(t, set.Standbys[0].PauseReplay(ctx))
	wctx, stopWriting := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; wctx.Err() == nil; i++ {
			set.Primary.ExecDB(wctx, pgtest.AppDB, "INSERT INTO ro_ticks VALUES ("+strconv.Itoa(i)+")")
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer func() { stopWriting(); wg.Wait() }()
	for _, db := range []string{pgtest.AppDB, "appdb_session"} {
		waitFor(t, "standby 0 to lag past max_replica_lag in "+db, func() bool {
			return r.hosts(t, db)[hostName(s0)].lag > 1.2
		})
		// Standby 1 keeps replaying; on a loaded machine it may have
		// fallen behind for a moment as well: wait until it qualifies, so
		// that the 200 transactions below test the paused standby's
		// exclusion, not the machine's speed.
		waitFor(t, "standby 1 to qualify in "+db, func() bool {
			h := r.hosts(t, db)[hostName(s1)]
			return h.role == "standby" && h.up && h.lag < 1
		})
	}
	counts = spread(t, r.ro, pgtest.AppDB, 200, 10)
	t.Logf("200 read transactions with standby %d lagging: %v", s0, counts)
	require.Equal(t, map[int]int{s1: 200}, counts)
	sess = sessions(t, r.ro, "appdb_session", "", 10)
	require.Equal(t, map[int]int{s1: 10}, sess)
	stopWriting()
	wg.Wait()

	// Both standbys down: read-only clients fall back to the primary, where
	// their sessions are still read-only by default; with
	// read_only_fallback refuse they are refused with 57P03.
	require.NoError(t, set.Standbys[0].Kill(ctx))
	require.NoError(t, set.Standbys[1].Kill(ctx))
	waitFor(t, "read-only transactions on the primary", func() bool {
		c, err := pgconn.Connect(ctx, dsnFor(r.ro, pgtest.AppDB, ""))
		if err != nil {
			return false
		}
		defer c.Close(ctx)
		w, err := query(ctx, c)
		return err == nil && w.port == r.primary
	})
	counts = spread(t, r.ro, pgtest.AppDB, 100, 5)
	require.Equal(t, map[int]int{r.primary: 100}, counts)
	c, err := pgconn.Connect(ctx, dsnFor(r.ro, pgtest.AppDB, ""))
	require.NoError(t, err)
	_, err = c.Exec(ctx, "INSERT INTO ro_ticks VALUES (-1)").ReadAll()
	require.Equal(t, "25006", sqlState(err), "a write through the read-only listener on the primary: %v", err)
	c.Close(ctx)
	sess = sessions(t, r.ro, "appdb_session", "", 3)
	require.Equal(t, map[int]int{r.primary: 3}, sess)
	// The primary's server connections just served read-only sessions;
	// read-write clients that get them next can write.
	for _, db := range []string{pgtest.AppDB, "appdb_session"} {
		c, err := pgconn.Connect(ctx, dsnFor(r.rw, db, ""))
		require.NoError(t, err)
		for i := range 20 {
			_, err = c.Exec(ctx, "INSERT INTO ro_ticks VALUES (-2)").ReadAll()
			require.NoError(t, err, "%s: write %d through the main listener after read-only sessions on the primary", db, i)
		}
		c.Close(ctx)
	}

	_, err = pgconn.Connect(ctx, dsnFor(r.ro, "appdb_refuse", ""))
	require.Equal(t, "57P03", sqlState(err), "read_only_fallback refuse: %v", err)
	_, err = pgconn.Connect(ctx, dsnFor(r.rw, pgtest.AppDB, "options='-c target_session_attrs=standby'"))
	require.Equal(t, "57P03", sqlState(err), "target_session_attrs=standby without a standby: %v", err)
	prefer := sessions(t, r.rw, pgtest.AppDB, "options='-c target_session_attrs=prefer-standby'", 2)
	require.Equal(t, map[int]int{r.primary: 2}, prefer)
}
