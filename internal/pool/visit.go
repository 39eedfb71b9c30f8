package pool

import "time"

// EachIdle calls f for every idle connection with when it was last
// released (zero if the pool does not record times), under the pool's
// lock: f must be quick and must not call the pool. For the admin
// console's SHOW SERVERS; nothing on a client's path calls it.
func (p *Pool[C]) EachIdle(f func(c C, released time.Time)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ic := range p.idle {
		f(ic.conn, ic.released)
	}
}
