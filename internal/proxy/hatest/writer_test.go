package hatest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// writer inserts numbered rows through sluice until stopped. A number is
// acknowledged only when its INSERT returned success; a failed INSERT
// is never retried (it may have committed) and the next number is used.
// Numbers only grow, so one sent after a moment can be told from one sent
// before it.
type writer struct {
	mu         sync.Mutex
	acked      []int
	ackedAt    []time.Time // when each of acked was acknowledged
	sent       int         // the largest number sent (or about to be)
	lastAck    time.Time
	failures   []writeFailure
	longestGap time.Duration
}

// writeFailure is one number that was not acknowledged, with the SQLSTATE
// the client got (empty when the error carried none: then err says what
// happened instead).
type writeFailure struct {
	n       int
	connect bool // connecting to sluice failed; nothing was sent
	code    string
	err     string
}

func (f writeFailure) String() string {
	what := "insert"
	if f.connect {
		what = "connect"
	}
	return fmt.Sprintf("%s %d: SQLSTATE %q (%s)", what, f.n, f.code, f.err)
}

func (w *writer) run(ctx context.Context, port int) {
	var c *pgconn.PgConn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for n := 1; ctx.Err() == nil; n++ {
		w.mu.Lock()
		w.sent = n
		w.mu.Unlock()
		if c == nil || c.IsClosed() {
			var err error
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err = pgconn.Connect(cctx, dsn(port))
			cancel()
			if err != nil {
				w.fail(ctx, n, true, err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		_, err := c.Exec(ctx, "INSERT INTO ha_writes VALUES ("+strconv.Itoa(n)+")").ReadAll()
		if err != nil {
			w.fail(ctx, n, false, err)
			continue
		}
		w.mu.Lock()
		now := time.Now()
		if !w.lastAck.IsZero() && now.Sub(w.lastAck) > w.longestGap {
			w.longestGap = now.Sub(w.lastAck)
		}
		w.acked = append(w.acked, n)
		w.ackedAt = append(w.ackedAt, now)
		w.lastAck = now
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// fail records a failure, unless it is only the writer being stopped.
func (w *writer) fail(ctx context.Context, n int, connect bool, err error) {
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	w.failures = append(w.failures, writeFailure{n: n, connect: connect, code: sqlState(err), err: err.Error()})
	w.mu.Unlock()
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// lastSent is the largest number sent so far.
func (w *writer) lastSent() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent
}

// firstAckAfter is when the first insert acknowledged after t was.
func (w *writer) firstAckAfter(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.ackedAt {
		if at.After(t) {
			return at, true
		}
	}
	return time.Time{}, false
}
