package notify

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQueueDropsOldest(t *testing.T) {
	var q Queue
	for i := range 5 {
		q.Push([]byte{byte(i)}, 3)
	}
	require.Equal(t, 3, q.Len())
	frames, dropped := q.Take()
	require.Equal(t, [][]byte{{2}, {3}, {4}}, frames)
	require.Equal(t, 2, dropped)
	require.Zero(t, q.Len())
	require.Nil(t, q.frames, "an emptied queue holds no memory")
	frames, dropped = q.Take()
	require.Nil(t, frames)
	require.Zero(t, dropped)
}

func TestQueueLongRunBounded(t *testing.T) {
	var q Queue
	for i := range 10000 {
		q.Push([]byte{byte(i)}, 10)
		require.LessOrEqual(t, cap(q.frames), 20, "the backing array stays near the bound")
	}
	frames, dropped := q.Take()
	require.Len(t, frames, 10)
	require.Equal(t, 9990, dropped)
	require.Equal(t, byte(9999%256), frames[9][0])
}

func TestRegistryUnion(t *testing.T) {
	var r Registry[int]
	require.True(t, r.Listen(1, "a"))
	require.False(t, r.Listen(2, "a"))
	require.True(t, r.Listen(2, "b"))
	listen, unlisten := r.Diff(map[string]bool{"c": true, "a": true})
	require.Equal(t, []string{"b"}, listen)
	require.Equal(t, []string{"c"}, unlisten)
	require.False(t, r.Unlisten(1, "a"))
	require.False(t, r.Unlisten(1, "a"), "twice: nothing")
	require.True(t, r.Unlisten(2, "a"))
	require.False(t, r.Unlisten(3, "zzz"))
	require.Equal(t, []string{"b"}, r.Channels())
	var got []int
	r.Each("b", func(s int) { got = append(got, s) })
	require.Equal(t, []int{2}, got)
}

func TestCommand(t *testing.T) {
	require.Equal(t, "", Command(nil, nil))
	require.Equal(t, `UNLISTEN "x"; LISTEN "a""b"; LISTEN "Ch"`, Command([]string{`a"b`, "Ch"}, []string{"x"}))
}
