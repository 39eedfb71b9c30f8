package hatest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// writer inserts numbered rows through sluice until stopped. A number is
// acknowledged only when its INSERT returned success; a failed INSERT
// is never retried (it may have committed) and the next number is used.
type writer struct {
	mu         sync.Mutex
	acked      []int
	lastAck    time.Time
	failures   int
	longestGap time.Duration
}

func (w *writer) run(ctx context.Context, t *testing.T, port int) {
	var c *pgconn.PgConn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for n := 1; ctx.Err() == nil; n++ {
		if c == nil || c.IsClosed() {
			var err error
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err = pgconn.Connect(cctx, dsn(port))
			cancel()
			if err != nil {
				w.fail()
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		_, err := c.Exec(ctx, "INSERT INTO ha_writes VALUES ("+strconv.Itoa(n)+")").ReadAll()
		if err != nil {
			w.fail()
			continue
		}
		w.mu.Lock()
		now := time.Now()
		if !w.lastAck.IsZero() && now.Sub(w.lastAck) > w.longestGap {
			w.longestGap = now.Sub(w.lastAck)
		}
		w.acked = append(w.acked, n)
		w.lastAck = now
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *writer) fail() {
	w.mu.Lock()
	w.failures++
	w.mu.Unlock()
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}
