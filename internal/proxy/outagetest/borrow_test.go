package outagetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// freePort returns a TCP port nothing listens on (for now).
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// startSluice serves a session-mode and a transaction-mode database, both
// the postgres database of the server on port, with backend settings
// that give up after two attempts (retries: 1) unless a client waits.
func startSluice(t *testing.T, port int, borrowTimeout string, maxSize int) (*proxy.Server, *syncbuf.Buffer) {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`listen: {address: "127.0.0.1:0"}
admin: {address: ""}
users:
  - {name: postgres, password: pw}
databases:
  session_db:
    dbname: postgres
    hosts: ["127.0.0.1:%[1]d"]
    pool: {max_size: %[3]d, borrow_timeout: %[2]s}
    backend: {retries: 1, backoff: 50ms, backoff_multiplier: 1}
  tx_db:
    dbname: postgres
    pool_mode: transaction
    hosts: ["127.0.0.1:%[1]d"]
    pool: {max_size: %[3]d, borrow_timeout: %[2]s}
    backend: {retries: 1, backoff: 50ms, backoff_multiplier: 1}
`, port, borrowTimeout, maxSize)), nil)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	srv, err := proxy.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv, logs
}

func dsn(srv *proxy.Server, db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=pw dbname=%s sslmode=disable", srv.Addr().(*net.TCPAddr).Port, db)
}

func failedAttempts(logs *syncbuf.Buffer) int {
	return strings.Count(logs.String(), "server connection attempt failed")
}

// A client that logs in while PostgreSQL is down waits (up to its
// borrow_timeout) while sluice keeps dialling past backend.retries, and
// is served once the server is back, in session and transaction mode.
// Today's main failed it with 08006 after retries+1 = 2 attempts.
func TestQueuedClientIsServedWhenServerComesBackWithinBorrowTimeout(t *testing.T) {
	port := freePort(t)
	srv, logs := startSluice(t, port, "10m", 2)
	var cluster *pgserver.Cluster
	defer func() {
		if cluster != nil {
			cluster.Stop()
		}
	}()
	for _, db := range []string{"session_db", "tx_db"} {
		t.Run(db, func(t *testing.T) {
			if cluster != nil {
				require.NoError(t, cluster.Shutdown(context.Background()))
			}
			before := failedAttempts(logs)
			type result struct {
				c   *pgconn.PgConn
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := pgconn.Connect(context.Background(), dsn(srv, db))
				done <- result{c, err}
			}()
			// Well past retries+1 attempts, the client is still waiting.
			require.Eventually(t, func() bool { return failedAttempts(logs) >= before+6 }, time.Minute, 10*time.Millisecond,
				"sluice keeps dialling for the waiting client:\n%s", logs)
			select {
			case r := <-done:
				t.Fatalf("the client did not wait for its borrow_timeout: %v", r.err)
			default:
			}
			if cluster == nil {
				var err error
				cluster, err = pgserver.Start(context.Background(), pgserver.Options{Port: port})
				require.NoError(t, err)
			} else {
				require.NoError(t, cluster.Restart(context.Background()))
			}
			r := <-done
			require.NoError(t, r.err, "log:\n%s", logs)
			res, err := r.c.Exec(context.Background(), "SELECT 42").ReadAll()
			require.NoError(t, err)
			require.Equal(t, "42", string(res[0].Rows[0][0]))
			require.NoError(t, r.c.Close(context.Background()))
			require.Contains(t, logs.String(), "deadline_in=", "attempts past retries are logged with the time left")
		})
	}
}

var attemptsRe = regexp.MustCompile(`(\d+) attempt\(s\)`)

// With the server down for good, clients get 08006 naming
// pool.borrow_timeout and the server's error once their borrow_timeout
// has passed, after more attempts than retries+1; a client queued behind
// another's dial too (not 53300 "all busy"). Today's main answered after
// 2 attempts, without a word of borrow_timeout.
func TestBorrowTimeoutWithServerDownNamesItAndTheServerError(t *testing.T) {
	srv, logs := startSluice(t, freePort(t), "1s", 1)
	for _, db := range []string{"session_db", "tx_db"} {
		t.Run(db, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make([]error, 2) // with max_size 1, one dials and one queues
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := pgconn.Connect(context.Background(), dsn(srv, db))
					if err == nil {
						c.Close(context.Background())
					}
					errs[i] = err
				}()
			}
			wg.Wait()
			most := 0 // attempts made for one client
			for _, err := range errs {
				var pe *pgconn.PgError
				require.True(t, errors.As(err, &pe), "%v", err)
				require.Equal(t, "08006", pe.Code, pe.Message)
				require.Contains(t, pe.Message, "pool.borrow_timeout (1s)")
				require.Contains(t, pe.Message, "connection refused")
				if m := attemptsRe.FindStringSubmatch(pe.Message); m != nil {
					n, _ := strconv.Atoi(m[1])
					most = max(most, n)
				}
			}
			// The first client's dial had all of its borrow_timeout; the
			// second got the slot with what was left of its own.
			require.Greater(t, most, 2, "more attempts than retries+1 for the client dialled for: %v\n%s", errs, logs)
		})
	}
}
