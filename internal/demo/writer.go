package demo

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// writer inserts numbered rows through sluice on one connection. A number
// counts as acknowledged only when its INSERT returned success; a failed
// INSERT is never retried (it may have committed) and the next number is
// used.
type writer struct {
	// fresh opens a new connection for every write (set before run), so
	// that a load balancer spreads the writes over the sluices behind it.
	fresh bool

	mu           sync.Mutex
	acks         []ack
	failed       []int
	connects     int         // connections opened to sluice
	connectFails []time.Time // when a connection attempt failed (nothing was sent: the number is reused)
}

type ack struct {
	n    int
	at   time.Time
	port int // inet_server_port() of the server that committed it
}

func (w *writer) run(ctx context.Context, dsn string, every time.Duration) {
	var c *pgconn.PgConn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for n := 1; ctx.Err() == nil; n++ {
		if c == nil || c.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var err error
			c, err = pgconn.Connect(cctx, dsn)
			cancel()
			if err != nil {
				c = nil
				n--
				if ctx.Err() == nil {
					w.mu.Lock()
					w.connectFails = append(w.connectFails, time.Now())
					w.mu.Unlock()
				}
				sleep(ctx, every)
				continue
			}
			w.mu.Lock()
			w.connects++
			w.mu.Unlock()
		}
		res, err := c.Exec(ctx, "INSERT INTO writes (n) VALUES ("+strconv.Itoa(n)+") RETURNING inet_server_port()").ReadAll()
		if err != nil {
			if ctx.Err() == nil {
				w.mu.Lock()
				w.failed = append(w.failed, n)
				w.mu.Unlock()
			}
			continue
		}
		port := 0
		if len(res) > 0 && len(res[0].Rows) > 0 {
			port, _ = strconv.Atoi(string(res[0].Rows[0][0]))
		}
		w.mu.Lock()
		w.acks = append(w.acks, ack{n: n, at: time.Now(), port: port})
		w.mu.Unlock()
		if w.fresh {
			c.Close(ctx)
			c = nil
		}
		sleep(ctx, every)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// progress is a copy of the writer's state.
type progress struct {
	acked    int
	lastAt   time.Time
	lastPort int
	acks     []ack
	failed   []int
	connects int
	// connectFails are the times connection attempts failed.
	connectFails []time.Time
}

// around returns the last write acknowledged by the server on port old
// and the first one acknowledged by another after it.
func (p progress) around(old int) (last, first ack) {
	for i, a := range p.acks {
		if a.port == old {
			last = a
		} else if last.n != 0 && first.n == 0 {
			first = p.acks[i]
		}
	}
	return last, first
}

// connectFailsSince counts the failed connection attempts after t.
func (p progress) connectFailsSince(t time.Time) int {
	n := 0
	for _, at := range p.connectFails {
		if at.After(t) {
			n++
		}
	}
	return n
}

// on counts the writes acknowledged by the server on port.
func (p progress) on(port int) int {
	n := 0
	for _, a := range p.acks {
		if a.port == port {
			n++
		}
	}
	return n
}

func (w *writer) snapshot() progress {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := progress{acked: len(w.acks), acks: append([]ack(nil), w.acks...), failed: append([]int(nil), w.failed...), connects: w.connects,
		connectFails: append([]time.Time(nil), w.connectFails...)}
	if len(w.acks) > 0 {
		last := w.acks[len(w.acks)-1]
		p.lastAt, p.lastPort = last.at, last.port
	}
	return p
}

// waitAcks waits until n writes are acknowledged and returns when the
// first one was.
func (w *writer) waitAcks(ctx context.Context, n int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		p := w.snapshot()
		if p.acked >= n {
			return p.acks[0].at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d writes failed in %s", len(p.failed), timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// line is the counter line.
func (w *writer) line(now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.acks) == 0 {
		return "writes acknowledged: 0"
	}
	last := w.acks[len(w.acks)-1]
	s := fmt.Sprintf("writes acknowledged: %4d (last %s ago)  primary: 127.0.0.1:%d", len(w.acks), fmtDur(now.Sub(last.at)), last.port)
	if len(w.failed) > 0 {
		s += fmt.Sprintf("  failed: %d", len(w.failed))
	}
	return s
}

// fmtDur prints milliseconds below a second, else seconds with 0.01 s.
func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
