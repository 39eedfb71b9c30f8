package stmtcache

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStatementCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := New(2)
	require.Empty(t, c.Add("a"))
	require.Empty(t, c.Add("b"))
	require.True(t, c.Has("a")) // a is now the most recent
	require.Equal(t, "b", c.Add("c"))
	require.False(t, c.Has("b"))
	require.True(t, c.Has("a"))
	require.True(t, c.Has("c"))
	require.Empty(t, c.Add("c"), "adding a present name evicts nothing")
	c.Remove("a")
	require.Equal(t, 1, c.Len())
	c.Clear()
	require.Equal(t, 0, c.Len())
	require.False(t, c.Has("c"))
}
