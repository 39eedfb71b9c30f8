package access

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxAddresses bounds how many (address, user) buckets a Limiter
// tracks.
const DefaultMaxAddresses = 100_000

// UnknownUser is the user name to pass for a user sluice does not know:
// all unknown names from an address share one bucket, so a client cannot
// make a new bucket (and memory) per name, nor escape the limit by
// rotating names.
const UnknownUser = ""

// Limiter limits failed logins per source address and user with a token
// bucket: every (address, user) starts with burst tokens, each failed
// login takes one, and tokens come back at perMinute per minute up to
// burst. A pair with less than one token is refused before it may try
// again; nothing ever sleeps.
//
// Keying by user as well as address is what keeps good clients in: many
// clients share an address (NAT, a host's applications, every Unix-socket
// client), and a flood of wrong passwords for one user, or for names that
// do not exist (UnknownUser), does not refuse another user from the same
// address. The price: a guesser gets burst tries per known user rather
// than per address, and a flood for user X from an address does refuse X
// from that address, right password or not: letting a right password in
// while refusing wrong ones would tell the guesser which one was right.
//
// Addresses are IPv4 addresses, IPv6 /64 prefixes (what one host usually
// gets, so an attacker cannot rotate through its own /64), and one shared
// key for all Unix-socket clients.
//
// Memory is bounded: only pairs with a recent failure are kept, an entry
// whose bucket has filled up again is dropped (it is then the same as an
// unknown pair), and at most maxAddresses are kept, the least recently
// failed being forgotten first. User names are those of the
// configuration (others are UnknownUser), so a key never holds a string
// the client made up.
type Limiter struct {
	mu         sync.Mutex
	perMinute  int
	burst      int
	max        int
	entries    map[limitKey]*list.Element // of *bucket
	byLastFail list.List                  // *bucket, least recently failed first
}

// limitKey is what a bucket counts failures of.
type limitKey struct {
	addr netip.Addr // see addrKey
	user string     // a configured user, or UnknownUser
}

type bucket struct {
	key    limitKey
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter with the given limits (burst 0 disables
// it) tracking at most maxAddresses addresses (<= 0: DefaultMaxAddresses).
func NewLimiter(perMinute, burst, maxAddresses int) *Limiter {
	if maxAddresses <= 0 {
		maxAddresses = DefaultMaxAddresses
	}
	l := &Limiter{max: maxAddresses, entries: map[limitKey]*list.Element{}}
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

// Allow reports whether the client at addr may try to log in as user
// (UnknownUser for a name sluice does not know): true unless that pair
// has no token left. It takes no token.
func (l *Limiter) Allow(addr net.Addr, user string) bool {
	key := limitKey{addrKey(addr), user}
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

// Fail records a failed login from addr as user (UnknownUser for a name
// sluice does not know), taking one token. It reports whether this
// failure took the pair's last token, so that callers log the moment a
// pair becomes limited once, not for every late failure.
func (l *Limiter) Fail(addr net.Addr, user string) (exhausted bool) {
	key := limitKey{addrKey(addr), user}
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

// Len is the number of (address, user) pairs tracked.
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

// addrKey is the address a client is limited by; the zero Addr stands
// for Unix-socket clients.
func addrKey(addr net.Addr) netip.Addr {
	ip, local := clientIP(addr)
	if local || !ip.IsValid() {
		return netip.Addr{}
	}
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip
}
