package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/haproxytest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// A fleet wired by the daemon (etcd membership gives the peer numbers,
// addresses and secret) behind a real HAProxy in round robin: a
// CancelRequest travels on a new connection, which HAProxy sends to the
// next instance, not the one serving the query. Every query is
// cancelled (57014), and the instances forwarded the cancels between
// them (their metrics say so).
func TestFleetCancelThroughEtcdMembershipAndHAProxy(t *testing.T) {
	etcd := etcdtest.Start(t)
	fleet := []*fleetInstance{
		startFleetInstance(t, etcd.Endpoint(), "c1", false),
		startFleetInstance(t, etcd.Endpoint(), "c2", false),
		startFleetInstance(t, etcd.Endpoint(), "c3", false),
	}
	for _, f := range fleet {
		eventually(t, f.id+" to see three peers", func() bool { return len(f.apiPeers(t)) == 3 })
	}
	lb := haproxytest.Start(t, fleet[0].d.Proxy.Addr().String(), fleet[1].d.Proxy.Addr().String(), fleet[2].d.Proxy.Addr().String())
	host, port, err := net.SplitHostPort(lb.Addr())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a guard against a hang
	defer cancel()
	cl := pgtest.Cluster(t)
	monitor, err := pgconn.Connect(ctx, cl.DSN("postgres", "", "postgres")+" host="+cl.SocketDir)
	require.NoError(t, err)
	defer monitor.Close(ctx)

	const queries = 100 // the count; one at a time, so no cancel can reach another query
	for i := range queries {
		conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
			host, port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
		require.NoError(t, err)
		tag := fmt.Sprintf("fleet cancel %d", i)
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(30) /* "+tag+" */").ReadAll()
			done <- err
		}()
		waitRunning(ctx, t, monitor, tag)
		require.NoError(t, conn.CancelRequest(ctx), "query %d", i) // a new connection: HAProxy's next instance
		err = <-done
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "query %d: %v", i, err)
		require.Equal(t, "57014", pgErr.Code, "query %d", i)
		conn.Close(ctx)
	}
	var forwarded, received float64
	for _, f := range fleet {
		forwarded += metricSum(t, f, `sluice_peer_cancels_sent_total{result="ok"}`)
		received += metricSum(t, f, `sluice_peer_cancels_received_total{result="ok"}`)
	}
	// Round robin over three instances alternates query and cancel
	// connections, so every cancel lands on another instance than its
	// query's; count at least half, in case HAProxy's turn moved.
	require.GreaterOrEqual(t, forwarded, float64(queries/2), "cancels forwarded between instances")
	require.Equal(t, forwarded, received)
}

// waitRunning waits until a query whose text contains tag is running.
func waitRunning(ctx context.Context, t *testing.T, monitor *pgconn.PgConn, tag string) {
	t.Helper()
	sql := "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%" + tag + " */%' AND pid <> pg_backend_pid()"
	for {
		res := monitor.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
		require.NoError(t, res.Err)
		if string(res.Rows[0][0]) == "1" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%q never ran: %v", tag, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// metricSum reads one sample from the instance's /metrics (0 if absent).
func metricSum(t *testing.T, f *fleetInstance, sample string) float64 {
	t.Helper()
	code, body := get(t, f.admin+"/metrics")
	require.Equal(t, 200, code)
	m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}
