package refusal

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	flood = Key{Addr: "10.0.0.1", Reason: "wrong_password"}
	other = Key{Addr: "10.0.0.2", Reason: "wrong_password"}
)

// A burst is logged once in full, then as one summary per interval that
// counts every refusal held back; a quiet interval resets the key.
func TestSummariserBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(10*time.Second, 0)
		start := time.Now()
		require.True(t, s.Note(flood, time.Now()), "the first refusal is logged in full")
		for range 999 {
			require.False(t, s.Note(flood, time.Now()))
		}
		require.True(t, s.Note(other, time.Now()), "other addresses are not held back")
		require.True(t, s.Note(Key{Addr: flood.Addr, Reason: "bad_startup"}, time.Now()), "nor other reasons")

		time.Sleep(9 * time.Second)
		require.Empty(t, s.Flush(time.Now()), "the interval is not over")
		time.Sleep(time.Second)
		require.Equal(t, []Summary{{Key: flood, Count: 999, Since: start}}, s.Flush(time.Now()))
		require.Equal(t, 1, s.Len(), "the quiet keys are forgotten, the refused one kept")

		// The burst goes on: still summarised, from the new window.
		second := time.Now()
		for range 5 {
			require.False(t, s.Note(flood, time.Now()))
		}
		time.Sleep(10 * time.Second)
		require.Equal(t, []Summary{{Key: flood, Count: 5, Since: second}}, s.Flush(time.Now()))

		// A quiet interval: forgotten, and the next refusal is logged in full.
		time.Sleep(10 * time.Second)
		require.Empty(t, s.Flush(time.Now()))
		require.Equal(t, 0, s.Len())
		require.True(t, s.Note(flood, time.Now()))
	})
}

// Refusals beyond MaxKeys keys are counted together under Overflow,
// whatever their address and reason: memory stays bounded and the log
// gets one line for them.
func TestSummariserBoundsKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(time.Second, 100)
		logged := 0
		for i := range 10_000 {
			if s.Note(Key{Addr: fmt.Sprintf("10.0.%d.%d", i/256, i%256), Reason: fmt.Sprint("reason", i%3)}, time.Now()) {
				logged++
			}
		}
		require.Equal(t, 101, logged, "100 addresses, then one line for the others")
		require.Equal(t, 101, s.Len())
		time.Sleep(time.Second)
		sums := s.Flush(time.Now())
		require.Len(t, sums, 1)
		require.Equal(t, Overflow, sums[0].Key)
		require.Equal(t, 10_000-101, sums[0].Count)
		require.Equal(t, 1, s.Len())
	})
}
