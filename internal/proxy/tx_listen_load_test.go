package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// The acceptance: 200 transaction-pooled clients over 5 server
// connections, each LISTENing on one of 20 channels, while another
// client sends 10,000 NOTIFYs (100 transactions of 100): every client
// gets every notification of its channel exactly once and in order, no
// client is ever pinned for listen, and the app's server connections,
// sampled throughout, never exceed 5 plus the one listener connection.
func TestTxListenFanOutAtScale(t *testing.T) {
	const (
		clients  = 200
		channels = 20
		total    = 10000
		perTx    = 100
	)
	h := start(t, txPool(5))
	m := h.srv.Metrics()
	ctx := context.Background()
	ls := make([]*listener, clients)
	for i := range ls {
		ls[i] = connectListening(t, h)
		query(t, ls[i].PgConn, fmt.Sprintf("LISTEN tx_scale_%d", i%channels))
	}
	require.Equal(t, 1.0, metricValue(t, m.Notify.ListenerConnections.WithLabelValues(pgtest.AppDB, pgtest.AppUser)))

	var maxConns atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
		}
		<-sampled
	})
	go func() {
		defer close(sampled)
		for {
			rows, err := pgtest.Cluster(t).Query(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = '"+pgtest.AppUser+"'")
			if err == nil {
				n, _ := strconv.Atoi(rows[0][0])
				if int64(n) > maxConns.Load() {
					maxConns.Store(int64(n))
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// Every client reads its notifications in its own goroutine.
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := i % channels                                    // payloads on channel k are k, k+20, k+40, ...
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // a guard against a hang
			defer cancel()
			for got := 0; got < total/channels; {
				select {
				case n := <-l.ch:
					seq, err := strconv.Atoi(n.Payload)
					if err != nil || n.Channel != fmt.Sprintf("tx_scale_%d", i%channels) || seq != want {
						errs <- fmt.Errorf("client %d: got %q on %s, want %d", i, n.Payload, n.Channel, want)
						return
					}
					want += channels
					got++
					if i%10 == 0 && got%100 == 0 {
						// Some clients run transactions meanwhile: a notification
						// that comes while one is attached waits for its end.
						if _, err := l.Exec(rctx, "BEGIN; SELECT 1; COMMIT").ReadAll(); err != nil {
							errs <- fmt.Errorf("client %d: %w", i, err)
							return
						}
					}
					continue
				default:
				}
				if err := l.WaitForNotification(rctx); err != nil {
					errs <- fmt.Errorf("client %d after %d notifications: %w", i, got, err)
					return
				}
			}
		}()
	}

	notifier := h.connect(ctx)
	began := time.Now()
	for from := 0; from < total; from += perTx {
		_, err := notifier.Exec(ctx, fmt.Sprintf(
			"SELECT count(pg_notify('tx_scale_' || (i %% %d), i::text)) FROM generate_series(%d, %d) i",
			channels, from, from+perTx-1)).ReadAll()
		require.NoError(t, err)
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	t.Logf("%d notifications fanned out to %d clients in %v", total, clients, time.Since(began).Round(time.Millisecond))
	close(errs)
	var failures []string
	for err := range errs {
		failures = append(failures, err.Error())
	}
	require.Empty(t, failures, "every client gets every notification of its channel once, in order")
	require.Equal(t, 0.0, metricValue(t, m.Pins.WithLabelValues("listen")), "no client was pinned for listen")
	require.Equal(t, 0.0, metricValue(t, m.PinnedClients.WithLabelValues("listen")))
	require.Equal(t, float64(total), metricValue(t, m.Notify.NotificationsReceived))
	require.Zero(t, metricValue(t, m.Notify.NotificationsDropped))
	require.LessOrEqual(t, maxConns.Load(), int64(5+1), "server connections never exceed max_size plus the listener")
	t.Logf("most app server connections seen: %d", maxConns.Load())
	for _, l := range ls {
		select {
		case n := <-l.ch:
			t.Fatalf("a notification too many: %v", n)
		default:
		}
	}
}
