package tlstest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// TestAccessRuleTLSRequired: a rule with tls: required (pg_hba's hostssl)
// lets psql in with sslmode=require, and refuses it with sslmode=disable
// with PostgreSQL's wording before any password is asked for (psql has no
// password here, so a password request would end in "no password
// supplied" instead). It never matches a Unix-socket client, whose
// connection libpq never encrypts.
func TestAccessRuleTLSRequired(t *testing.T) {
	h := startWith(t, "allow", "access:\n  - {cidr: all, users: ["+pgtest.AppUser+"], tls: required}\n")

	out, err := psql(t, h.dsn("sslmode=require"), "SELECT 1")
	require.NoError(t, err, out)
	require.Equal(t, "1", strings.TrimSpace(out))

	noPassword := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", h.port, pgtest.AppUser, pgtest.AppDB)
	out, err = psql(t, noPassword+" sslmode=disable", "SELECT 1")
	require.Error(t, err, out)
	require.Contains(t, out, fmt.Sprintf(`FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "%s", database "%s", no encryption`, pgtest.AppUser, pgtest.AppDB))
	require.NotContains(t, out, "password")
	require.Contains(t, h.logs.String(), "sqlstate=28000")

	// cidr all would cover the socket, but tls: required never does.
	out, err = psql(t, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s", h.sock, h.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB), "SELECT 1")
	require.Error(t, err, out)
	require.Contains(t, out, fmt.Sprintf(`no pg_hba.conf entry for host "[local]", user "%s", database "%s", no encryption`, pgtest.AppUser, pgtest.AppDB))
}

// TestAccessRuleTLSForbidden: tls: forbidden (pg_hba's hostnossl) matches
// plain TCP clients only; a TLS client falls through to the next rule,
// here a reject, and gets PostgreSQL's wording for it.
func TestAccessRuleTLSForbidden(t *testing.T) {
	h := startWith(t, "allow", "access:\n  - {cidr: 127.0.0.1, tls: forbidden}\n  - {cidr: all, method: reject}\n")

	out, err := psql(t, h.dsn("sslmode=disable"), "SELECT 1")
	require.NoError(t, err, out)
	require.Equal(t, "1", strings.TrimSpace(out))

	out, err = psql(t, h.dsn("sslmode=require"), "SELECT 1")
	require.Error(t, err, out)
	require.Contains(t, out, fmt.Sprintf(`FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "%s", database "%s", SSL encryption`, pgtest.AppUser, pgtest.AppDB))
	require.Contains(t, h.logs.String(), "rule=access[1]")
}
