package pool

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// An adopted connection (an upgrade's previous process opened it) counts
// as busy against max_size like a borrowed one, is refused when the pool
// is full, and goes idle at Release like any other.
func TestAdoptCountsAsBusy(t *testing.T) {
	d := &fakeDialer{}
	p := newTestPool(Config{MaxSize: 2}, d)
	a := acquire(t, p)
	moved := &fakeConn{id: 99, d: d}
	d.open.Add(1) // opened elsewhere: it closes here
	require.NoError(t, p.Adopt(moved))
	require.Equal(t, Stats{Busy: 2, Dials: 1}, p.Stats())
	require.ErrorIs(t, p.Adopt(&fakeConn{id: 100, d: d}), ErrExhausted)
	p.Release(moved)
	require.Equal(t, Stats{Idle: 1, Busy: 1, Dials: 1}, p.Stats())
	require.Same(t, moved, acquire(t, p))
	p.Release(moved)
	p.Release(a)
	p.Close()
	require.ErrorIs(t, p.Adopt(&fakeConn{id: 101, d: d}), ErrClosed)
}
