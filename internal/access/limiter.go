package access

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxAddresses bounds how many source addresses a Limiter tracks.
const DefaultMaxAddresses = 100_000

// Limiter limits failed logins per source address with a token bucket:
// every address starts with burst tokens, each failed login takes one,
// and tokens come back at perMinute per minute up to burst. An address
// with less than one token is refused before it may try again; other
// addresses are not affected, and nothing ever sleeps.
//
// Addresses are IPv4 addresses, IPv6 /64 prefixes (what one host usually
// gets, so an attacker cannot rotate through its own /64), and one shared
// key for all Unix-socket clients.
//
// Memory is bounded: only addresses with a recent failure are kept, an
// entry whose bucket has filled up again is dropped (it is then the same
// as an unknown address), and at most maxAddresses are kept, the least
// recently failed being forgotten first.
type Limiter struct {
	mu         sync.Mutex
	perMinute  int
	burst      int
	max        int
	entries    map[netip.Addr]*list.Element // of *bucket
	byLastFail list.List                    // *bucket, least recently failed first
}

type bucket struct {
	key    netip.Addr
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter with the given limits (burst 0 disables
// it) tracking at most maxAddresses addresses (<= 0: DefaultMaxAddresses).
func NewLimiter(perMinute, burst, maxAddresses int) *Limiter {
	if maxAddresses <= 0 {
		maxAddresses = DefaultMaxAddresses
	}
	l := &Limiter{max: maxAddresses, entries: map[netip.Addr]*list.Element{}}
	l.Configure(perMinute, burst)
	return l
}

// Configure changes the limits (on a configuration reload). Known
// addresses keep their tokens, capped at the new burst; burst <= 0 or
// perMinute <= 0 disables the limiter and forgets every address.
func (l *Limiter) Configure(perMinute, burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if perMinute == l.perMinute && burst == l.burst {
		return
	}
	l.perMinute, l.burst = perMinute, burst
	if !l.enabled() {
		clear(l.entries)
		l.byLastFail.Init()
		return
	}
	for _, e := range l.entries {
		b := e.Value.(*bucket)
		b.tokens = min(b.tokens, float64(burst))
	}
}

func (l *Limiter) enabled() bool { return l.burst > 0 && l.perMinute > 0 }

// Allow reports whether the client at addr may try to log in: true unless
// its address has no token left. It takes no token.
func (l *Limiter) Allow(addr net.Addr) bool {
	key := limitKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.enabled() {
		return true
	}
	e, ok := l.entries[key]
	if !ok {
		return true
	}
	return l.refill(e.Value.(*bucket), time.Now()) >= 1
}

// Fail records a failed login from addr, taking one token. It reports
// whether this failure took the address's last token, so that callers log
// the moment an address becomes limited once, not for every late failure.
func (l *Limiter) Fail(addr net.Addr) (exhausted bool) {
	key := limitKey(addr)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.enabled() {
		return false
	}
	l.sweep(now)
	e, ok := l.entries[key]
	if !ok {
		for len(l.entries) >= l.max {
			l.remove(l.byLastFail.Front())
		}
		e = l.byLastFail.PushBack(&bucket{key: key, tokens: float64(l.burst), last: now})
		l.entries[key] = e
	}
	b := e.Value.(*bucket)
	before := l.refill(b, now)
	b.tokens = max(before-1, 0)
	b.last = now
	l.byLastFail.MoveToBack(e)
	return before >= 1 && b.tokens < 1
}

// Len is the number of addresses tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// refill returns b's tokens at now, without storing them.
func (l *Limiter) refill(b *bucket, now time.Time) float64 {
	t := b.tokens + now.Sub(b.last).Minutes()*float64(l.perMinute)
	return min(t, float64(l.burst))
}

// sweep drops the least recently failed entries whose buckets are full
// again. Each entry is dropped once, so the cost is amortised over Fail.
func (l *Limiter) sweep(now time.Time) {
	for e := l.byLastFail.Front(); e != nil; e = l.byLastFail.Front() {
		if l.refill(e.Value.(*bucket), now) < float64(l.burst) {
			return
		}
		l.remove(e)
	}
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.entries, e.Value.(*bucket).key)
	l.byLastFail.Remove(e)
}

// limitKey is the address a client is limited by; the zero Addr stands
// for Unix-socket clients.
func limitKey(addr net.Addr) netip.Addr {
	ip, local := clientIP(addr)
	if local || !ip.IsValid() {
		return netip.Addr{}
	}
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip
}
