package pgtest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// WaitActive polls pg_stat_activity through monitor until backend pid is
// active on a query containing like (no '%' or '_' needed), so that a test
// can cancel a query it knows is running. It returns ctx's error or a
// query error.
func WaitActive(ctx context.Context, monitor *pgconn.PgConn, pid uint32, like string) error {
	pattern := strings.ReplaceAll(like, "'", "''")
	sql := fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND query LIKE '%%%s%%' AND state = 'active'", pid, pattern)
	for {
		res := monitor.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return res.Err
		}
		if string(res.Rows[0][0]) == "1" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
