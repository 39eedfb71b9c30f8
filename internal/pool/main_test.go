package pool

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn records how often it was closed and how many holders it has.
type fakeConn struct {
	id       int
	d        *fakeDialer
	closes   atomic.Int32
	dead     atomic.Bool
	holders  atomic.Int32 // maintained by tests that check exclusive use
	created  time.Time    // when dial returned it (virtual time under synctest)
	closedAt atomic.Int64 // UnixNano of the first Close
	key      uint64       // settings key, from the dial's context (affinity tests)
}

// SettingsKey implements Keyed, as *backend.Conn does.
func (c *fakeConn) SettingsKey() uint64 { return c.key }

// settingsKeyCtx carries the settings key a test dial opens a connection
// with, as sluice's dial takes the client's parameters from the context.
type settingsKeyCtx struct{}

// CreatedAt implements Created, as *backend.Conn does.
func (c *fakeConn) CreatedAt() time.Time { return c.created }

func (c *fakeConn) Close() error {
	if c.closes.Add(1) == 1 {
		c.closedAt.Store(time.Now().UnixNano())
		c.d.open.Add(-1)
	}
	return nil
}

func (c *fakeConn) String() string { return fmt.Sprintf("conn#%d", c.id) }

// fakeDialer hands out fakeConns and tracks how many are open (including
// dials in progress) and the high-water mark of that number.
type fakeDialer struct {
	// hook, if set, runs at the start of every dial; a non-nil error fails it.
	hook func(ctx context.Context, n int) error

	mu       sync.Mutex
	conns    []*fakeConn
	attempts int

	open    atomic.Int64
	maxOpen atomic.Int64
}

func (d *fakeDialer) dial(ctx context.Context) (*fakeConn, error) {
	n := d.open.Add(1)
	for {
		m := d.maxOpen.Load()
		if n <= m || d.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	d.mu.Lock()
	d.attempts++
	attempt := d.attempts
	d.mu.Unlock()
	if d.hook != nil {
		if err := d.hook(ctx, attempt); err != nil {
			d.open.Add(-1)
			return nil, err
		}
	}
	d.mu.Lock()
	key, _ := ctx.Value(settingsKeyCtx{}).(uint64)
	c := &fakeConn{id: len(d.conns) + 1, d: d, created: time.Now(), key: key}
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

func (d *fakeDialer) all() []*fakeConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*fakeConn(nil), d.conns...)
}

func alive(c *fakeConn) bool { return !c.dead.Load() }

func newTestPool(cfg Config, d *fakeDialer) *Pool[*fakeConn] {
	return New(cfg, d.dial, alive)
}

// requireAllClosedOnce checks every dialled connection was closed exactly once.
func requireAllClosedOnce(t *testing.T, d *fakeDialer) {
	t.Helper()
	for _, c := range d.all() {
		require.EqualValues(t, 1, c.closes.Load(), "%v closed %d times", c, c.closes.Load())
	}
	require.Zero(t, d.open.Load())
}

func acquire(t *testing.T, p *Pool[*fakeConn]) *fakeConn {
	t.Helper()
	c, err := p.Acquire(context.Background())
	require.NoError(t, err)
	require.NotNil(t, c)
	return c
}
