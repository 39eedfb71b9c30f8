package proxy_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// staticFleet is a fleet fixed by the test, standing in for the cluster
// member: peer numbers to addresses and one shared secret.
type staticFleet struct {
	mu     sync.Mutex
	addrs  map[uint16]string
	secret []byte
}

// staticPeers is one instance's view of a staticFleet (a proxy.CancelPeers).
type staticPeers struct {
	id    uint16
	fleet *staticFleet
}

func (p staticPeers) PeerID() uint16 { return p.id }
func (p staticPeers) Secret() []byte { return p.fleet.secret }
func (p staticPeers) PeerAddress(id uint16) (string, bool) {
	p.fleet.mu.Lock()
	defer p.fleet.mu.Unlock()
	a, ok := p.fleet.addrs[id]
	return a, ok
}

// fleetIDs are the peer numbers of startFleet's instances: the lowest,
// one, and the highest there is, so that every bit of the layout is used.
var fleetIDs = []uint16{1, 2, 16383}

// startFleet starts len(fleetIDs) sluices in front of the package's
// PostgreSQL, each knowing the others through one staticFleet.
func startFleet(t *testing.T, poolYAML string) ([]*harness, *staticFleet) {
	t.Helper()
	fl := &staticFleet{addrs: map[uint16]string{}, secret: make([]byte, 32)}
	rand.Read(fl.secret)
	var hs []*harness
	for _, id := range fleetIDs {
		h := start(t, poolYAML)
		h.srv.SetCancelPeers(staticPeers{id: id, fleet: fl})
		fl.mu.Lock()
		fl.addrs[id] = h.srv.Addr().String()
		fl.mu.Unlock()
		hs = append(hs, h)
	}
	return hs, fl
}

// sendRaw writes pkt to addr as a fresh connection's first bytes and
// waits until sluice closes the connection (it has then acted on a cancel
// or dispatched its forward); it returns what sluice answered.
func sendRaw(addr string, pkt []byte) ([]byte, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute)) // a guard against a hang, not a measured limit
	if _, err := c.Write(pkt); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

// cancelVia sends a client's CancelRequest for key (pid, secret) to addr,
// which need not be the instance that issued the key.
func cancelVia(addr string, pid uint32, secret []byte) error {
	pkt, err := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
	if err != nil {
		return err
	}
	answer, err := sendRaw(addr, pkt)
	if err == nil && len(answer) > 0 {
		err = fmt.Errorf("sluice answered a cancel request: %q", answer)
	}
	return err
}

// monitor is a connection straight to PostgreSQL that several goroutines
// share to watch pg_stat_activity.
type monitor struct {
	mu sync.Mutex
	c  *pgconn.PgConn
}

func newMonitor(t *testing.T) *monitor {
	t.Helper()
	cl := pgtest.Cluster(t)
	c, err := pgconn.Connect(context.Background(), cl.DSN("postgres", "", "postgres")+" host="+cl.SocketDir)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return &monitor{c: c}
}

// waitRunning waits until a backend runs exactly sql (a query text unique
// to one client) or done is closed (the query ended first).
func (m *monitor) waitRunning(ctx context.Context, sql string, done <-chan struct{}) error {
	q := fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE query = '%s' AND state = 'active'", strings.ReplaceAll(sql, "'", "''"))
	for {
		m.mu.Lock()
		res := m.c.ExecParams(ctx, q, nil, nil, nil, nil).Read()
		m.mu.Unlock()
		if res.Err != nil {
			return res.Err
		}
		if string(res.Rows[0][0]) == "1" {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%q ended before it was seen running", sql)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
