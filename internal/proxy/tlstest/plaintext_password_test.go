package tlstest

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

const plaintextRefusal = "password authentication over an unencrypted connection is not allowed; connect with TLS (sslmode=require) or set auth.allow_plaintext_password"

// Method password sends the password in clear, so sluice asks for it only
// where it cannot be read on the way: over TLS or on the Unix socket. A
// plain TCP client is refused before it is asked for the password.
func TestPasswordMethodNeedsTLS(t *testing.T) {
	h := startWith(t, "allow", "auth: {method: password}\n")
	ctx := context.Background()

	_, err := pgconn.Connect(ctx, h.dsn("sslmode=disable"))
	pe := pgErr(t, err)
	require.Equal(t, "28000", pe.Code, "%v", err)
	require.Equal(t, plaintextRefusal, pe.Message)
	out, err := psql(t, h.dsn("sslmode=disable"), "SELECT 1")
	require.Error(t, err)
	require.Contains(t, out, plaintextRefusal)

	out, err = psql(t, h.dsn("sslmode=verify-full sslrootcert="+h.ca.File), "SELECT current_user")
	require.NoError(t, err, out)
	require.Equal(t, pgtest.AppUser+"\n", out)
	c, err := pgconn.Connect(ctx, h.dsn("sslmode=require"))
	require.NoError(t, err)
	require.NoError(t, c.Close(ctx))

	// The Unix socket is exempt: libpq never uses TLS there.
	out, err = psql(t, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s", h.sock, h.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB), "SELECT 1")
	require.NoError(t, err, out)

	// An access rule that switches clients to password is held to the
	// same rule as auth.method.
	h = startWith(t, "allow", "access:\n  - {cidr: all, method: password}\n")
	_, err = pgconn.Connect(ctx, h.dsn("sslmode=disable"))
	require.Equal(t, plaintextRefusal, pgErr(t, err).Message)
	c, err = pgconn.Connect(ctx, h.dsn("sslmode=require"))
	require.NoError(t, err)
	require.NoError(t, c.Close(ctx))
}

func TestAllowPlaintextPassword(t *testing.T) {
	h := startWith(t, "disable", "auth: {method: password, allow_plaintext_password: true}\n")
	out, err := psql(t, h.dsn("sslmode=disable"), "SELECT current_user")
	require.NoError(t, err, out)
	require.Equal(t, pgtest.AppUser+"\n", out)
	c, err := pgconn.Connect(context.Background(), h.dsn("sslmode=disable"))
	require.NoError(t, err)
	require.NoError(t, c.Close(context.Background()))
	_, err = pgconn.Connect(context.Background(), h.dsn("sslmode=disable password=wrong")) // a later password= wins
	require.Equal(t, "28P01", pgErr(t, err).Code, "the password is still checked")
}
