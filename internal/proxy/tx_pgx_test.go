package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Acceptance 2: pgx with its default statement cache, 200 goroutines over
// 10 server connections, varied prepared queries and transactions, every
// result checked.
func TestTxPgxStatementCache200Goroutines(t *testing.T) {
	dur := 30 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	h := start(t, txPool(10))
	ctx := context.Background()
	setup := h.connect(ctx)
	query(t, setup, "CREATE TABLE IF NOT EXISTS tx_pgx(g int, i int)")
	query(t, setup, "TRUNCATE tx_pgx")

	var wg sync.WaitGroup
	var ops atomic.Int64
	deadline := time.Now().Add(dur)
	for g := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, h.dsn("app", "app_pw"))
			if err != nil {
				t.Errorf("connect: %v", err)
				return
			}
			defer conn.Close(ctx)
			committed := 0
			for i := 0; time.Now().Before(deadline); i++ {
				if err := pgxStep(ctx, conn, g, i, &committed); err != nil {
					t.Errorf("goroutine %d step %d: %v", g, i, err)
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Positive(t, ops.Load())
	t.Logf("%d checked operations by 200 goroutines in %s", ops.Load(), dur)
}

// pgxStep runs one of several prepared queries or transactions and
// checks its result against what it must be.
func pgxStep(ctx context.Context, conn *pgx.Conn, g, i int, committed *int) error {
	switch i % 5 {
	case 0:
		var sum int
		if err := conn.QueryRow(ctx, "SELECT $1::int + $2::int", g, i).Scan(&sum); err != nil {
			return err
		}
		if sum != g+i {
			return fmt.Errorf("sum %d, want %d", sum, g+i)
		}
	case 1:
		var s string
		if err := conn.QueryRow(ctx, "SELECT $1::text || '-' || $2::text", fmt.Sprint(g), fmt.Sprint(i)).Scan(&s); err != nil {
			return err
		}
		if want := fmt.Sprintf("%d-%d", g, i); s != want {
			return fmt.Errorf("text %q, want %q", s, want)
		}
	case 2:
		n := i%50 + 1
		rows, err := conn.Query(ctx, "SELECT n, n * n FROM generate_series(1, $1::int) AS n", n)
		if err != nil {
			return err
		}
		k := 0
		for rows.Next() {
			var a, b int
			if err := rows.Scan(&a, &b); err != nil {
				return err
			}
			k++
			if a != k || b != k*k {
				return fmt.Errorf("row %d: %d, %d", k, a, b)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if k != n {
			return fmt.Errorf("%d rows, want %d", k, n)
		}
	case 3:
		// A per-goroutine statement text, so the caches see many names.
		sql := fmt.Sprintf("SELECT %d + $1::int", g%37) + strings.Repeat(" ", g%3)
		var v int
		if err := conn.QueryRow(ctx, sql, i).Scan(&v); err != nil {
			return err
		}
		if v != g%37+i {
			return fmt.Errorf("value %d, want %d", v, g%37+i)
		}
	case 4:
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO tx_pgx VALUES ($1, $2)", g, i); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM tx_pgx WHERE g = $1", g).Scan(&n); err != nil {
			return err
		}
		if n != *committed+1 {
			return fmt.Errorf("count in transaction %d, want %d", n, *committed+1)
		}
		if i%2 == 0 {
			if err := tx.Commit(ctx); err != nil {
				return err
			}
			*committed++
		} else if err := tx.Rollback(ctx); err != nil {
			return err
		}
	}
	return nil
}
