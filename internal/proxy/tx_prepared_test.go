package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// lruStatement is client c's statement k: even ones have the same text
// for every client (one server statement shared), odd ones a text of
// that client's own under the same client-side name.
func lruStatement(c, k int) (sql string, want func(x int) string) {
	if k%2 == 0 {
		return fmt.Sprintf("SELECT $1::int + %d", k), func(x int) string { return strconv.Itoa(x + k) }
	}
	return fmt.Sprintf("SELECT $1::int * 1000 + %d", c*10+k), func(x int) string { return strconv.Itoa(x*1000 + c*10 + k) }
}

// With max_prepared_statements: 2 and clients using six statements each
// over one or two server connections, statements are evicted (least
// recently used) and prepared again all the time, also in the middle of
// a pipeline and inside transactions: every result must be the right
// one, and no server connection ever holds more than two of sluice's
// statements.
func TestTxPreparedStatementsEvictedAndPreparedAgain(t *testing.T) {
	for _, size := range []int{1, 2} {
		t.Run(fmt.Sprintf("max_size_%d", size), func(t *testing.T) {
			h := start(t, fmt.Sprintf("max_size: %d\n      max_prepared_statements: 2\n    pool_mode: transaction", size))
			ctx := context.Background()
			const clients, rounds = 6, 30
			var wg sync.WaitGroup
			var checked, mostOnServer atomic.Int64
			for id := range clients {
				c := h.connect(ctx)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := lruClient(ctx, c, id, rounds, &checked, &mostOnServer); err != nil {
						t.Errorf("client %d: %v", id, err)
					}
				}()
			}
			wg.Wait()
			t.Logf("%d results checked; at most %d sluice statements seen on a server connection", checked.Load(), mostOnServer.Load())
			require.Equal(t, int64(clients*rounds*(1+6+2)), checked.Load())
			require.LessOrEqual(t, mostOnServer.Load(), int64(2), "a server connection held more than max_prepared_statements")
			require.Positive(t, mostOnServer.Load())
		})
	}
}

const lruStatements = 6

// lruClient prepares six statements, then in every round runs one of
// them alone, all six in one pipeline (in an order that changes every
// round) and two inside a transaction, checking each result.
func lruClient(ctx context.Context, c *pgconn.PgConn, id, rounds int, checked, mostOnServer *atomic.Int64) error {
	wants := make([]func(int) string, lruStatements)
	for k := range lruStatements {
		sql, want := lruStatement(id, k)
		wants[k] = want
		if _, err := c.Prepare(ctx, "s"+strconv.Itoa(k), sql, nil); err != nil {
			return fmt.Errorf("prepare s%d: %w", k, err)
		}
	}
	check := func(k, x int, res *pgconn.ResultReader) error {
		r := res.Read()
		if r.Err != nil {
			return fmt.Errorf("s%d(%d): %w", k, x, r.Err)
		}
		if len(r.Rows) != 1 || string(r.Rows[0][0]) != wants[k](x) {
			return fmt.Errorf("s%d(%d) = %q, want %s", k, x, r.Rows, wants[k](x))
		}
		checked.Add(1)
		return nil
	}
	arg := func(x int) [][]byte { return [][]byte{[]byte(strconv.Itoa(x))} }
	for r := range rounds {
		k := (r + id) % lruStatements
		if err := check(k, r, c.ExecPrepared(ctx, "s"+strconv.Itoa(k), arg(r), nil, nil)); err != nil {
			return fmt.Errorf("round %d alone: %w", r, err)
		}

		batch := &pgconn.Batch{}
		order := make([]int, lruStatements)
		for i := range order {
			order[i] = (i*(1+4*(r%2)) + r) % lruStatements // steps of 1 or 5: a permutation
			batch.ExecPrepared("s"+strconv.Itoa(order[i]), arg(r+i), nil, nil)
		}
		res, err := c.ExecBatch(ctx, batch).ReadAll()
		if err != nil {
			return fmt.Errorf("round %d pipeline %v: %w", r, order, err)
		}
		for i, kk := range order {
			if len(res[i].Rows) != 1 || string(res[i].Rows[0][0]) != wants[kk](r+i) {
				return fmt.Errorf("round %d pipeline %v: s%d(%d) = %q, want %s", r, order, kk, r+i, res[i].Rows, wants[kk](r+i))
			}
			checked.Add(1)
		}

		if _, err := c.Exec(ctx, "BEGIN").ReadAll(); err != nil {
			return err
		}
		for _, kk := range []int{(k + 1) % lruStatements, (k + 4) % lruStatements} {
			if err := check(kk, -r, c.ExecPrepared(ctx, "s"+strconv.Itoa(kk), arg(-r), nil, nil)); err != nil {
				return fmt.Errorf("round %d in a transaction: %w", r, err)
			}
		}
		onServer, err := c.Exec(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sluice\\_%'; COMMIT").ReadAll()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(onServer[0].Rows[0][0]), 10, 64)
		if err != nil {
			return err
		}
		for m := mostOnServer.Load(); n > m && !mostOnServer.CompareAndSwap(m, n); m = mostOnServer.Load() {
		}
	}
	return nil
}
