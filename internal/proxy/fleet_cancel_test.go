package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/metrics"
	"github.com/sluice-proxy/sluice/internal/peercancel"
	"github.com/sluice-proxy/sluice/internal/proxy"
)

// Issue 15, cancel anywhere: in a fleet of three sluices, 100 queries
// (pg_sleep(30), each one client's own text) are each cancelled through
// a CancelRequest sent to another instance than the one that issued the
// key, as a load balancer would route it. All 100 end with 57014, and a
// bystander on every instance, running queries all along, is never hit.
func TestFleetCancelAnywhere(t *testing.T) {
	for _, mode := range []struct{ name, pool string }{{"session", ""}, {"transaction", txPool(10)}} {
		t.Run(mode.name, func(t *testing.T) { testFleetCancelAnywhere(t, mode.pool) })
	}
}

func testFleetCancelAnywhere(t *testing.T, poolYAML string) {
	hs, _ := startFleet(t, poolYAML)
	ctx := context.Background()
	mon := newMonitor(t)
	stop := make(chan struct{})
	var bystanders sync.WaitGroup
	var bystanderQueries atomic.Int64
	for i, h := range hs {
		c := h.connect(ctx)
		bystanders.Add(1)
		go func() {
			defer bystanders.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := sleepAndEcho(ctx, c, "0.01", 9000+i); err != nil {
					t.Errorf("bystander on instance %d (never cancelled): %v", fleetIDs[i], err)
					return
				}
				bystanderQueries.Add(1)
			}
		}()
	}
	const workers, rounds = 10, 10
	var cancelled, cancelTime atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		home := w % len(hs)
		c := hs[home].connect(ctx)
		peer, ok := peercancel.PeerOf(c.PID())
		require.True(t, ok, "pid %d", c.PID())
		require.Equal(t, fleetIDs[home], peer, "the key names the instance that issued it")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				sql := fmt.Sprintf("SELECT pg_sleep(30), %d", w*rounds+r)
				via := (home + 1 + r%2) % len(hs) // either of the two others
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
				sentAt := time.Now()
				if cerr := cancelVia(hs[via].srv.Addr().String(), c.PID(), c.SecretKey()); cerr != nil {
					t.Errorf("worker %d: cancel through instance %d: %v", w, fleetIDs[via], cerr)
				}
				cancelTime.Add(int64(time.Since(sentAt)))
				<-done
				if pgCode(err) != "57014" {
					t.Errorf("worker %d round %d (key of instance %d, cancel sent to %d): %v", w, r, fleetIDs[home], fleetIDs[via], err)
					return
				}
				cancelled.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	bystanders.Wait()
	require.Equal(t, int64(workers*rounds), cancelled.Load(), "cancelled through another instance")
	require.Positive(t, bystanderQueries.Load())

	sent := func(h *harness, r string) prometheus.Metric {
		return h.srv.Metrics().PeerCancelsSent.WithLabelValues(r)
	}
	received := func(h *harness, r string) prometheus.Metric {
		return h.srv.Metrics().PeerCancelsReceived.WithLabelValues(r)
	}
	// The cancels' connections are closed: every forward was counted.
	require.Equal(t, float64(workers*rounds), sum(t, hs, func(h *harness) prometheus.Metric { return sent(h, "ok") }))
	require.Equal(t, float64(workers*rounds), sum(t, hs, func(h *harness) prometheus.Metric { return received(h, "ok") }))
	for _, h := range hs {
		for _, r := range metrics.PeerCancelSentResults[1:] {
			require.Zero(t, metricValue(t, sent(h, r)), r)
		}
		for _, r := range metrics.PeerCancelReceivedResults[1:] {
			require.Zero(t, metricValue(t, received(h, r)), r)
		}
	}
	t.Logf("%d queries cancelled through another instance (a cancel connection took %s on average: forwarded, delivered, closed); %d bystander queries unharmed",
		cancelled.Load(), time.Duration(cancelTime.Load()/workers/rounds).Round(time.Microsecond), bystanderQueries.Load())
}

// sum is the sum of one metric over the fleet.
func sum(t *testing.T, hs []*harness, m func(*harness) prometheus.Metric) (s float64) {
	for _, h := range hs {
		s += metricValue(t, m(h))
	}
	return s
}

// A forwarded cancel that is not the fleet's (wrong MAC, malformed),
// stale (either way), replayed, or sent to an instance that did not issue
// the key cancels nothing and is counted; the genuine one cancels.
func TestFleetForgedForwardsCancelNothing(t *testing.T) {
	hs, fl := startFleet(t, txPool(4))
	ctx := context.Background()
	mon := newMonitor(t)
	issuer, other := hs[0], hs[1]
	c := issuer.connect(ctx)
	key := peercancel.Forward{Sender: fleetIDs[1], PID: c.PID(), Secret: [4]byte(c.SecretKey())}
	seal := func(secret []byte, f peercancel.Forward, age time.Duration) []byte {
		f.UnixMilli = time.Now().Add(-age).UnixMilli()
		rand.Read(f.Nonce[:])
		pkt, err := peercancel.Seal(nil, secret, f)
		require.NoError(t, err)
		return pkt
	}
	send := func(h *harness, pkt []byte) {
		answer, err := sendRaw(h.srv.Addr().String(), pkt)
		require.NoError(t, err)
		require.Empty(t, answer, "a cancel has no answer")
	}
	received := func(h *harness, r string) float64 {
		return metricValue(t, h.srv.Metrics().PeerCancelsReceived.WithLabelValues(r))
	}
	var err error
	running := func(sql string) chan struct{} {
		done := make(chan struct{})
		qctx, stop := context.WithCancel(ctx)
		t.Cleanup(func() { stop(); <-done }) // before c closes, should the test fail early
		go func() {
			defer close(done)
			_, err = c.Exec(qctx, sql).ReadAll()
		}()
		require.NoError(t, mon.waitRunning(ctx, sql, done))
		return done
	}

	done := running("SELECT pg_sleep(30), 1")
	wrongKey := key
	wrongKey.Secret[3] ^= 1
	short := seal(fl.secret, key, 0)
	short = short[:len(short)-1]
	binary.BigEndian.PutUint32(short, uint32(len(short)))
	// sendRaw returns once sluice closed the connection, after acting:
	// the counts are final then.
	send(issuer, seal(bytes.Repeat([]byte{0x55}, 32), key, 0)) // another fleet's secret
	send(issuer, short)
	send(issuer, seal(fl.secret, key, 31*time.Second))  // stale
	send(issuer, seal(fl.secret, key, -31*time.Second)) // from the future
	send(issuer, seal(fl.secret, wrongKey, 0))
	require.Equal(t, 2.0, received(issuer, "bad_mac"))
	require.Equal(t, 2.0, received(issuer, "stale"))
	require.Equal(t, 1.0, received(issuer, "unknown_key"))
	// A genuine forward sent to an instance that did not issue the key
	// is acted on there only: never forwarded again.
	send(other, seal(fl.secret, key, 0))
	require.Equal(t, 1.0, received(other, "unknown_key"))
	for _, h := range hs {
		for _, r := range metrics.PeerCancelSentResults {
			require.Zero(t, metricValue(t, h.srv.Metrics().PeerCancelsSent.WithLabelValues(r)), r)
		}
	}
	require.NoError(t, mon.waitRunning(ctx, "SELECT pg_sleep(30), 1", done), "still running")
	require.Zero(t, received(issuer, "ok"))

	genuine := seal(fl.secret, key, 0)
	send(issuer, genuine)
	<-done
	require.Equal(t, "57014", pgCode(err), "%v", err)
	require.Equal(t, 1.0, received(issuer, "ok"))

	done = running("SELECT pg_sleep(30), 2")
	send(issuer, genuine) // the same bytes again, while fresh
	require.Equal(t, 1.0, received(issuer, "replayed"))
	require.NoError(t, mon.waitRunning(ctx, "SELECT pg_sleep(30), 2", done), "a replay cancelled nothing")
	require.NoError(t, cancelVia(other.srv.Addr().String(), c.PID(), c.SecretKey()))
	<-done
	require.Equal(t, "57014", pgCode(err), "%v", err)
}

// A flood of cancels for another instance's keys has at most
// MaxForwardsInFlight forwards (sockets to the peer) at once; the rest are
// dropped at once and counted. The peer here accepts and answers only
// when the test lets it, so the first forwards stay in flight, and their
// clients wait, as a client of PostgreSQL waits for its cancel to be
// delivered.
func TestFleetForwardsAreBounded(t *testing.T) {
	defer proxy.SetForwardTimeout(time.Minute)()
	hs, fl := startFleet(t, txPool(2))
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	fl.mu.Lock()
	fl.addrs[fleetIDs[2]] = silent.Addr().String()
	fl.mu.Unlock()
	accepted := make(chan net.Conn, 2*proxy.MaxForwardsInFlight)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	addr := hs[0].srv.Addr().String()
	pid := peercancel.PID(fleetIDs[2], 7)
	var waiting sync.WaitGroup
	for range proxy.MaxForwardsInFlight {
		waiting.Add(1)
		go func() {
			defer waiting.Done()
			if err := cancelVia(addr, pid, []byte{1, 2, 3, 4}); err != nil {
				t.Error(err)
			}
		}()
	}
	var held []net.Conn
	for range proxy.MaxForwardsInFlight {
		select {
		case c := <-accepted:
			held = append(held, c)
		case <-time.After(time.Minute): // a guard against a hang, not a measured limit
			t.Fatalf("%d forwards reached the peer, want %d", len(held), proxy.MaxForwardsInFlight)
		}
	}
	const extra = 20
	for range extra {
		require.NoError(t, cancelVia(addr, pid, []byte{1, 2, 3, 4}))
	}
	m := hs[0].srv.Metrics().PeerCancelsSent
	require.Equal(t, float64(extra), metricValue(t, m.WithLabelValues("overloaded")))
	require.Zero(t, len(accepted), "no forward beyond the limit dialled")
	// Unknown peers cost nothing at all.
	require.NoError(t, cancelVia(addr, peercancel.PID(999, 1), []byte{1, 2, 3, 4}))
	require.Equal(t, 1.0, metricValue(t, m.WithLabelValues("peer_unknown")))
	for _, c := range held {
		// The forwards end: the peer read and closed, as after a cancel.
		_, err := io.ReadFull(c, make([]byte, peercancel.PacketLen))
		require.NoError(t, err)
		c.Close()
	}
	waiting.Wait()
	require.Equal(t, float64(proxy.MaxForwardsInFlight), metricValue(t, m.WithLabelValues("ok")))
}

// Without a fleet, a forwarded cancel is what it was before fleets
// existed: an unknown protocol version, refused with 0A000.
func TestForwardedCancelWithoutFleetIsRefused(t *testing.T) {
	h := start(t, txPool(2))
	pkt, err := peercancel.Seal(nil, bytes.Repeat([]byte{1}, 32), peercancel.Forward{Sender: 2, PID: peercancel.PID(1, 1)})
	require.NoError(t, err)
	answer, err := sendRaw(h.srv.Addr().String(), pkt)
	require.NoError(t, err)
	require.Equal(t, byte('E'), answer[0])
	require.Contains(t, string(answer), "0A000")
	require.Contains(t, string(answer), "unsupported frontend protocol 1234.5699")
	for _, r := range metrics.PeerCancelReceivedResults {
		require.Zero(t, metricValue(t, h.srv.Metrics().PeerCancelsReceived.WithLabelValues(r)), r)
	}
}
