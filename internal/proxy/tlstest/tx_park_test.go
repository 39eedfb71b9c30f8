package tlstest

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// A transaction-pooled TLS client is never parked (txpool's park.go): a
// *tls.Conn may hold decrypted bytes the kernel no longer shows, so its
// socket's readiness says nothing. It keeps its goroutine (moved to a
// fresh one by the hop sweep) and works after idling, while a plain
// client of the same sluice, idle as long, is parked.
func TestTxTLSClientIsNotParked(t *testing.T) {
	h := startWith(t, "allow", "    pool_mode: transaction\n")
	h.srv.SetParkAfter(20 * time.Millisecond)
	ctx := context.Background()
	secure, err := pgconn.Connect(ctx, h.dsn("sslmode=require"))
	require.NoError(t, err)
	defer secure.Close(ctx)
	require.IsType(t, &tls.Conn{}, secure.Conn())
	plain, err := pgconn.Connect(ctx, h.dsn("sslmode=disable"))
	require.NoError(t, err)
	defer plain.Close(ctx)

	res := secure.ExecParams(ctx, "SET application_name = 'secure'", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	// The plain client parks after each of its statements; the TLS
	// client idles through all of those periods and is never parked.
	for i := range 3 {
		require.NoError(t, plain.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read().Err, "round %d", i)
		waitFor(t, "the plain client to park", func() bool { return h.srv.ParkedClients() >= 1 })
	}
	// Stop parking (a client is asked only after two more sweeps, now an
	// hour apart) and wake the plain client: whoever is parked then is
	// the TLS client.
	h.srv.SetParkAfter(time.Hour)
	require.NoError(t, plain.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read().Err)
	require.Zero(t, h.srv.ParkedClients(), "the TLS client was parked")
	res = secure.ExecParams(ctx, "SHOW application_name", nil, nil, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "secure", string(res.Rows[0][0]))
}
