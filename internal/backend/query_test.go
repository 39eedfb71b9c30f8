package backend_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

func TestQueryWithParameters(t *testing.T) {
	c := dial(t, opts(t, pgtest.AppUser, pgtest.AppPassword))
	ctx := context.Background()

	// The parameter is data, never SQL.
	tricky := "x'; DROP TABLE pgbench_accounts; --"
	rows, err := c.Query(ctx, "SELECT $1::text, NULL::text, n FROM generate_series(1, 2) n", tricky)
	require.NoError(t, err)
	require.Equal(t, [][][]byte{{[]byte(tricky), nil, []byte("1")}, {[]byte(tricky), nil, []byte("2")}}, rows)

	rows, err = c.Query(ctx, "SELECT 1 WHERE $1 = 'no'", "yes")
	require.NoError(t, err)
	require.Empty(t, rows)

	// A server error leaves the connection idle and usable.
	_, err = c.Query(ctx, "SELECT * FROM no_such_table WHERE a = $1", "x")
	var se *backend.ServerError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, "42P01", se.Response.Code)
	require.True(t, c.Alive())
	rows, err = c.Query(ctx, "SELECT current_user")
	require.NoError(t, err)
	require.Equal(t, pgtest.AppUser, string(rows[0][0]))
	require.NoError(t, c.Reset(ctx, 'I'))
}
