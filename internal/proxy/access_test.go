package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// connectFrom connects to dsn from the local address ip (on Linux all of
// 127/8 is local, so 127.0.0.2 is a second "client host").
func connectFrom(ctx context.Context, t *testing.T, ip, dsn string) (*pgconn.PgConn, error) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	require.NoError(t, err)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	cfg.DialFunc = d.DialContext
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return ""
}

func TestAccessRules(t *testing.T) {
	h := startWith(t, "", `access:
  - cidr: 127.0.0.4
    method: reject
  - cidr: 127.0.0.3
    users: [`+pgtest.AppUser+`]
    method: trust
  - cidr: 127.0.0.1/32
`)
	ctx := context.Background()
	good := h.dsn(pgtest.AppUser, pgtest.AppPassword)

	c, err := connectFrom(ctx, t, "127.0.0.1", good)
	require.NoError(t, err)
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))

	_, err = connectFrom(ctx, t, "127.0.0.2", good)
	require.Equal(t, "28000", pgCode(err), "%v", err)
	require.Equal(t, fmt.Sprintf(`no pg_hba.conf entry for host "127.0.0.2", user "%s", database "%s", no encryption`, pgtest.AppUser, pgtest.AppDB), pgMessage(err))

	// The rule for 127.0.0.3 makes app trusted there (a wrong password does
	// not matter), and matches no other user.
	c, err = connectFrom(ctx, t, "127.0.0.3", h.dsn(pgtest.AppUser, "wrong"))
	require.NoError(t, err)
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
	_, err = connectFrom(ctx, t, "127.0.0.3", h.dsn(pgtest.MD5User, pgtest.MD5Password))
	require.Equal(t, "28000", pgCode(err), "%v", err)
	require.Contains(t, pgMessage(err), `no pg_hba.conf entry for host "127.0.0.3"`)

	_, err = connectFrom(ctx, t, "127.0.0.4", good)
	require.Equal(t, "28000", pgCode(err), "%v", err)
	require.Contains(t, pgMessage(err), `pg_hba.conf rejects connection for host "127.0.0.4"`)
	require.Contains(t, h.logs.String(), "rule=access[0]")

	// An unknown database is refused by the rules first: clients outside
	// the allow-list do not learn which databases exist.
	_, err = connectFrom(ctx, t, "127.0.0.2", h.dsn(pgtest.AppUser, pgtest.AppPassword)+" dbname=nosuchdb")
	require.Equal(t, "28000", pgCode(err), "%v", err)

	// The Unix socket needs a "local" rule, as in pg_hba.
	_, err = pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s", h.sock, h.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.Equal(t, "28000", pgCode(err), "%v", err)
	require.Contains(t, pgMessage(err), `no pg_hba.conf entry for host "[local]"`)
}

func TestAccessLocalRule(t *testing.T) {
	h := startWith(t, "", "access:\n  - cidr: local\n    method: trust\n")
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s password=wrong dbname=%s", h.sock, h.port, pgtest.AppUser, pgtest.AppDB))
	require.NoError(t, err)
	defer c.Close(ctx)
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
	_, err = connectFrom(ctx, t, "127.0.0.1", h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.Equal(t, "28000", pgCode(err), "%v", err)
}

// TestFailedLoginBurstDoesNotLockOutOthers: 1,000 or more wrong passwords
// from 127.0.0.2, 20 at a time, use up that address's failed logins
// (28P01, then the limit's 28000), while a client from 127.0.0.1 logs in
// and works at its first try. The good login is held open mid-way (its
// startup packet sent, sluice waiting for its password) until the burst
// has answered another round of attempts, and the burst goes on until the
// good login is over, so the two certainly overlap. Tokens come back at
// one a minute, so none does during the test.
func TestFailedLoginBurstDoesNotLockOutOthers(t *testing.T) {
	h := startWith(t, "", "limits:\n  auth_failures_per_minute: 1\n  auth_failure_burst: 10\n")
	ctx := context.Background()
	bad := h.dsn(pgtest.AppUser, "wrong")
	const attempts, workers = 1000, 20

	var wrongPassword, limited, answered atomic.Int64
	firstLimited := make(chan struct{})
	var once sync.Once
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				_, err := connectFrom(ctx, t, "127.0.0.2", bad)
				switch {
				case pgCode(err) == "28P01":
					wrongPassword.Add(1)
				case pgCode(err) == "28000" && pgMessage(err) == "too many failed logins from 127.0.0.2; try again later":
					limited.Add(1)
					once.Do(func() { close(firstLimited) })
				default:
					t.Errorf("unexpected result of a wrong password: %v", err)
				}
				answered.Add(1)
			}
		})
	}

	// The good client dials once (no retries) and, on its first read
	// (after its startup packet went out), waits for a round of bad
	// attempts to be answered before it goes on with the login.
	var dials atomic.Int64
	var answeredDuringLogin int64
	goodDone := make(chan error, 1)
	goodOver := make(chan struct{})
	go func() {
		defer close(goodOver)
		<-firstLimited // the address is being refused: the burst is on
		cfg, err := pgconn.ParseConfig(h.dsn(pgtest.AppUser, pgtest.AppPassword))
		if err != nil {
			goodDone <- err
			return
		}
		var mark int64
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &heldConn{Conn: nc, hold: func() {
				mark = answered.Load()
				for answered.Load() < mark+workers {
					time.Sleep(time.Millisecond)
				}
			}}, nil
		}
		c, err := pgconn.ConnectConfig(ctx, cfg)
		answeredDuringLogin = answered.Load() - mark
		if err == nil {
			res := c.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read()
			if err = res.Err; err == nil && (len(res.Rows) != 1 || string(res.Rows[0][0]) != "1") {
				err = fmt.Errorf("SELECT 1 returned %v", res.Rows)
			}
			c.Close(ctx)
		}
		goodDone <- err
	}()
	sent := 0
	for ; sent < attempts; sent++ {
		jobs <- sent
	}
	once.Do(func() { close(firstLimited) }) // never limited: let the good client finish and fail below
	// Keep the burst going until the good login is over.
	for burst := true; burst; {
		select {
		case jobs <- sent:
			sent++
		case <-goodOver:
			burst = false
		}
	}
	close(jobs)
	wg.Wait()

	require.NoError(t, <-goodDone, "a client from another address must get in during the burst")
	require.Equal(t, int64(1), dials.Load(), "the good client got in at its first try")
	require.GreaterOrEqual(t, answeredDuringLogin, int64(workers), "bad attempts were answered while the good login was under way")
	require.Equal(t, int64(sent), wrongPassword.Load()+limited.Load())
	require.GreaterOrEqual(t, wrongPassword.Load(), int64(10), "the burst allows 10 failures")
	require.Less(t, wrongPassword.Load(), int64(10+workers+1), "at most the attempts already under way fail after the burst")
	require.Greater(t, limited.Load(), int64(attempts/2))

	// The address is refused before authentication: even the right
	// password does not get in now.
	_, err := connectFrom(ctx, t, "127.0.0.2", h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.Equal(t, "28000", pgCode(err), "%v", err)
	require.Contains(t, pgMessage(err), "too many failed logins from 127.0.0.2")
	require.Contains(t, h.logs.String(), "too many failed logins: refusing this address")

	c := h.connect(ctx) // 127.0.0.1 is still fine
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
	require.Equal(t, 1, strings.Count(h.logs.String(), "too many failed logins: refusing this address"),
		"the address runs out once")
}

// heldConn runs hold once, before the first read: the client has sent what
// it sends first and sluice is waiting for its next message.
type heldConn struct {
	net.Conn
	once sync.Once
	hold func()
}

func (c *heldConn) Read(p []byte) (int, error) {
	c.once.Do(c.hold)
	return c.Conn.Read(p)
}
