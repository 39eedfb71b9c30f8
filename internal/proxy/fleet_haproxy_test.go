package proxy_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/haproxytest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// Issue 15's cancel test as a client meets it: three sluices behind
// HAProxy (TCP, round robin); 100 queries pg_sleep(30), each cancelled
// with the driver's own CancelRequest, a fresh connection that HAProxy
// routes to whichever instance comes next. All 100 end with 57014.
func TestFleetCancelThroughHAProxy(t *testing.T) {
	hs, _ := startFleet(t, txPool(10))
	var backends []string
	for _, h := range hs {
		backends = append(backends, h.srv.Addr().String())
	}
	front := haproxytest.Start(t, backends...).Addr()
	host, port, err := net.SplitHostPort(front)
	require.NoError(t, err)
	ctx := context.Background()
	mon := newMonitor(t)
	const workers, rounds = 10, 10
	var cancelled atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		c, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
			host, port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close(context.Background()) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				sql := fmt.Sprintf("SELECT pg_sleep(30), %d", 5000+w*rounds+r)
				done := make(chan struct{})
				var err error
				go func() {
					defer close(done)
					_, err = c.Exec(ctx, sql).ReadAll()
				}()
				if werr := mon.waitRunning(ctx, sql, done); werr != nil {
					<-done
					t.Errorf("worker %d: %v (query error: %v)", w, werr, err)
					return
				}
				if cerr := c.CancelRequest(ctx); cerr != nil {
					t.Errorf("worker %d: cancel request: %v", w, cerr)
				}
				<-done
				if pgCode(err) != "57014" {
					t.Errorf("worker %d round %d: %v", w, r, err)
					return
				}
				cancelled.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(workers*rounds), cancelled.Load())
	forwarded := sum(t, hs, func(h *harness) prometheus.Metric { return h.srv.Metrics().PeerCancelsSent.WithLabelValues("ok") })
	require.Equal(t, forwarded, sum(t, hs, func(h *harness) prometheus.Metric { return h.srv.Metrics().PeerCancelsReceived.WithLabelValues("ok") }))
	require.Positive(t, forwarded, "HAProxy sent every cancel to the instance that issued its key: the test proves nothing")
	t.Logf("%d of %d cancels reached another instance than the issuer and were forwarded", int(forwarded), workers*rounds)
}
