package access

import (
	"fmt"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// failUntilRefused records failures from addr until Allow refuses it and
// returns how many were allowed.
func failUntilRefused(t *testing.T, l *Limiter, addr net.Addr) int {
	t.Helper()
	n := 0
	for l.Allow(addr, "u") {
		l.Fail(addr, "u")
		n++
		require.Less(t, n, 10_000, "never refused")
	}
	return n
}

func TestLimiterBurstAndRefill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(60, 5, 0) // one token a second, 5 at most
		a := tcp("10.0.0.1")
		for i := range 4 {
			require.True(t, l.Allow(a, "u"))
			require.False(t, l.Fail(a, "u"), "failure %d", i+1)
		}
		require.True(t, l.Allow(a, "u"))
		require.True(t, l.Fail(a, "u"), "the fifth failure uses the last token")
		require.False(t, l.Allow(a, "u"))
		require.False(t, l.Fail(a, "u"), "a late failure does not run out again")

		time.Sleep(999 * time.Millisecond) // late failures do not make it owe tokens
		require.False(t, l.Allow(a, "u"), "not quite a token yet")
		time.Sleep(time.Millisecond)
		require.True(t, l.Allow(a, "u"), "one token after a second")
		require.True(t, l.Fail(a, "u"))
		require.False(t, l.Allow(a, "u"))

		time.Sleep(time.Hour) // refills to burst, never beyond
		require.Equal(t, 5, failUntilRefused(t, l, a))
	})
}

func TestLimiterIsolatesAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(1, 3, 0)
		bad := tcp("10.0.0.1")
		require.Equal(t, 3, failUntilRefused(t, l, bad))
		for range 1000 {
			l.Fail(bad, "u")
		}
		require.False(t, l.Allow(bad, "u"))
		for _, other := range []net.Addr{tcp("10.0.0.2"), tcp("::ffff:10.0.0.3"), tcp("2001:db8:0:1::1"), unixAddr} {
			require.True(t, l.Allow(other, "u"), "%v", other)
		}
		// IPv6 is limited per /64; the socket is one address.
		require.Equal(t, 3, failUntilRefused(t, l, tcp("2001:db8::1")))
		require.False(t, l.Allow(tcp("2001:db8::ffff:2"), "u"))
		require.True(t, l.Allow(tcp("2001:db8:0:1::1"), "u"))
		require.Equal(t, 3, failUntilRefused(t, l, unixAddr))
		require.False(t, l.Allow(nil, "u"))
		require.True(t, l.Allow(tcp("10.0.0.2"), "u"))

		// 1,000 failures did not make the bucket owe tokens: one minute
		// gives one attempt back.
		time.Sleep(time.Minute)
		require.True(t, l.Allow(bad, "u"))
	})
}

func TestLimiterForgetsFullBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(60, 2, 0)
		for i := range 100 {
			l.Fail(tcp(fmt.Sprintf("10.0.%d.%d", i/256, i%256)), "u")
		}
		require.Equal(t, 100, l.Len())
		time.Sleep(time.Second) // one failure back each: full again
		l.Fail(tcp("192.168.0.1"), "u")
		require.Equal(t, 1, l.Len(), "entries whose bucket is full again are dropped")

		l.Fail(tcp("192.168.0.1"), "u")
		l.Fail(tcp("192.168.0.2"), "u")
		time.Sleep(time.Second)
		l.Fail(tcp("192.168.0.3"), "u")
		require.Equal(t, 3, l.Len(), "192.168.0.1 still owes a token, so .2 (full again, but behind it) is kept for now")
	})
}

func TestLimiterCapsAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(1, 2, 10)
		first := tcp("10.0.0.1")
		l.Fail(first, "u")
		l.Fail(first, "u")
		require.False(t, l.Allow(first, "u"))
		for i := range 1000 {
			l.Fail(tcp(fmt.Sprintf("10.1.%d.%d", i/256, i%256)), "u")
			require.LessOrEqual(t, l.Len(), 10)
		}
		require.Equal(t, 10, l.Len())
		require.True(t, l.Allow(first, "u"), "the least recently failed address was forgotten")
		last := tcp("10.1.3.231") // i = 999
		l.Fail(last, "u")
		require.False(t, l.Allow(last, "u"), "recent addresses are kept")
	})
}

func TestLimiterConfigure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(60, 0, 0)
		a := tcp("10.0.0.1")
		for range 100 {
			require.False(t, l.Fail(a, "u"))
		}
		require.True(t, l.Allow(a, "u"), "burst 0 disables the limiter")
		require.Equal(t, 0, l.Len())

		l.Configure(60, 10)
		require.Equal(t, 10, failUntilRefused(t, l, a))
		l.Configure(60, 2) // tokens capped at the new burst
		time.Sleep(10 * time.Second)
		require.Equal(t, 2, failUntilRefused(t, l, a))
		l.Configure(0, 2) // rate 0 disables too
		require.True(t, l.Allow(a, "u"))
		require.Equal(t, 0, l.Len())
	})
}

// A flood of failures for one user, and for names sluice does not know,
// does not refuse another user from the same address; each user is
// limited on its own, and all unknown names share one bucket.
func TestLimiterKeysByAddressAndUser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(1, 3, 0)
		for _, a := range []net.Addr{tcp("10.0.0.1"), unixAddr} {
			for range 1000 {
				l.Fail(a, "x")
				l.Fail(a, UnknownUser)
			}
			require.False(t, l.Allow(a, "x"))
			require.False(t, l.Allow(a, UnknownUser), "every unknown name is refused")
			require.True(t, l.Allow(a, "app"), "another user from the same address still may try")
			require.Equal(t, 3, failUntilRefusedAs(t, l, a, "app"), "and is limited on its own")
		}
		require.Equal(t, 6, l.Len(), "one bucket per (address, user), one for all unknown names")
		require.True(t, l.Allow(tcp("10.0.0.2"), "x"))
	})
}

func failUntilRefusedAs(t *testing.T, l *Limiter, addr net.Addr, user string) int {
	t.Helper()
	n := 0
	for l.Allow(addr, user) {
		l.Fail(addr, user)
		n++
		require.Less(t, n, 10_000, "never refused")
	}
	return n
}
