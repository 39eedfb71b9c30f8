package proxy_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/pgserver"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// Roles made for the auth_query tests (never the shared fixtures, whose
// passwords other tests rely on). None of them is in sluice's users[].
const (
	aqAuthUser = "aq_sluice_auth" // runs auth_query through the SECURITY DEFINER function
	aqAuthPW   = "aq_auth_pw"
	aqUser     = "aq_app" // stored as SCRAM
	aqPW       = "aq_app_pw"
	aqMD5User  = "aq_md5" // stored as md5
	aqMD5PW    = "aq_md5_pw"
	aqRotUser  = "aq_rot" // its password is changed by the test
	aqRotPW    = "aq_rot_pw"
)

// authQuery is the query sluice runs: the function, not pg_shadow, so the
// auth user needs no superuser rights.
const authQuery = "SELECT usename, passwd FROM sluice_aq.get_auth($1)"

// setupAuthQueryRoles creates the roles and, in AppDB, the SECURITY
// DEFINER function (owned by the superuser) that only the auth user may
// execute. It is idempotent.
func setupAuthQueryRoles(t *testing.T) *pgserver.Cluster {
	t.Helper()
	c := pgtest.Cluster(t)
	ctx := context.Background()
	for _, r := range []struct{ name, pw, method string }{
		{aqAuthUser, aqAuthPW, "scram-sha-256"}, {aqUser, aqPW, "scram-sha-256"},
		{aqMD5User, aqMD5PW, "md5"}, {aqRotUser, aqRotPW, "scram-sha-256"},
	} {
		require.NoError(t, c.CreateRole(ctx, r.name, r.pw, r.method))
	}
	require.NoError(t, c.ExecDB(ctx, pgtest.AppDB, fmt.Sprintf(`
CREATE SCHEMA IF NOT EXISTS sluice_aq AUTHORIZATION postgres;
CREATE OR REPLACE FUNCTION sluice_aq.get_auth(p_usename text)
  RETURNS TABLE (usename name, passwd text)
  LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
  AS $$ SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = p_usename $$;
REVOKE ALL ON FUNCTION sluice_aq.get_auth(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA sluice_aq TO %[1]s;
GRANT EXECUTE ON FUNCTION sluice_aq.get_auth(text) TO %[1]s;
GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO %[2]s, %[3]s, %[4]s;
`, aqAuthUser, aqUser, aqMD5User, aqRotUser)))
	return c
}

// startAuthQuery runs sluice with the auth user in users[] (its server
// password is all sluice holds) and auth_query on; no other aq_ role has
// a password in the config. The failed-login limit is off: tests try
// passwords the cache is expected to refuse.
func startAuthQuery(t *testing.T, ttl, query string) *harness {
	t.Helper()
	setupAuthQueryRoles(t)
	sock := t.TempDir()
	// aq_md5 is listed without a password: it is looked up too.
	extra := fmt.Sprintf("  - name: %s\n    password: %s\n  - name: %s\n", aqAuthUser, aqAuthPW, aqMD5User)
	text := configText(t, sock, "", extra) + fmt.Sprintf(`auth:
  auth_user: %s
  auth_query: %q
  auth_query_cache_ttl: %s
limits:
  auth_failure_burst: 0
log:
  level: debug
`, aqAuthUser, query, ttl)
	return startConfig(t, sock, text)
}

func (h *harness) dsnAs(user, password string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", h.port, user, password, pgtest.AppDB)
}

func currentUser(t *testing.T, dsn string) (string, error) {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), dsn)
	if err != nil {
		return "", err
	}
	defer c.Close(context.Background())
	res := c.ExecParams(context.Background(), "SELECT current_user", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return "", res.Err
	}
	return string(res.Rows[0][0]), nil
}

func TestAuthQuerySCRAM(t *testing.T) {
	h := startAuthQuery(t, "60s", authQuery)

	// psql (libpq's SCRAM) and pgx log in as a user sluice has no
	// password for, and PostgreSQL sees that user.
	out, err := psql(t, []string{"PGPASSWORD=" + aqPW}, "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", aqUser, "-d", pgtest.AppDB, "-c", "SELECT current_user")
	require.NoError(t, err, out)
	require.Equal(t, aqUser, strings.TrimSpace(out))
	user, err := currentUser(t, h.dsnAs(aqUser, aqPW))
	require.NoError(t, err)
	require.Equal(t, aqUser, user)

	// pgbench -C: a new client login (through the cache) per transaction,
	// server connections logged in with the recovered key.
	cmd := exec.Command("pgbench", "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", aqUser, "-n", "-C", "-S", "-T", "3", "-c", "4", pgtest.AppDB)
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+aqPW)
	pb, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", pb)
	require.Regexp(t, regexp.MustCompile(`number of failed transactions: 0 `), string(pb))
	require.Regexp(t, regexp.MustCompile(`number of transactions actually processed: [1-9]`), string(pb))

	// A wrong password and an unknown user get the same 28P01.
	_, err = currentUser(t, h.dsnAs(aqUser, "wrong"))
	require.Equal(t, "28P01", pgCode(err), "%v", err)
	require.Equal(t, fmt.Sprintf("password authentication failed for user %q", aqUser), pgMessage(err))
	_, err = currentUser(t, h.dsnAs("aq_nobody", "whatever"))
	require.Equal(t, "28P01", pgCode(err), "%v", err)
	require.Equal(t, `password authentication failed for user "aq_nobody"`, pgMessage(err))
	out, err = psql(t, []string{"PGPASSWORD=whatever"}, "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", "aq_nobody", "-d", pgtest.AppDB, "-c", "SELECT 1")
	require.Error(t, err)
	require.Contains(t, out, `password authentication failed for user "aq_nobody"`)

	// The md5-stored role: md5 to the client, the hash to the server.
	user, err = currentUser(t, h.dsnAs(aqMD5User, aqMD5PW))
	require.NoError(t, err)
	require.Equal(t, aqMD5User, user)
	_, err = currentUser(t, h.dsnAs(aqMD5User, "wrong"))
	require.Equal(t, "28P01", pgCode(err))

	// Configured users are unaffected.
	user, err = currentUser(t, h.dsnAs(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	require.Equal(t, pgtest.AppUser, user)

	logs := h.logs.String()
	for _, secret := range []string{aqPW, aqMD5PW, aqAuthPW, "SCRAM-SHA-256$"} {
		require.NotContains(t, logs, secret)
	}
}

// TestAuthQueryPasswordChangeWithinTTL shows the cache at work: after
// ALTER ROLE, logins are still checked against the cached verifier (the
// old password works, the new one does not) until auth_query_cache_ttl
// has passed since the look-up; then the very first login with the new
// password looks the verifier up again and gets in.
func TestAuthQueryPasswordChangeWithinTTL(t *testing.T) {
	c := pgtest.Cluster(t)
	ctx := context.Background()
	const newPW = "aq_rot_pw_2"
	// The logins right after ALTER ROLE must all finish before the TTL
	// runs out, and a loaded machine can be slower than any fixed TTL. The
	// look-up happens after start, so an attempt that finished within ttl
	// of start saw only the cached verifier; one that took longer proves
	// nothing and is repeated with a longer TTL instead of failing.
	var h *harness
	ttl := 3 * time.Second
	for ; ; ttl *= 4 {
		h = startAuthQuery(t, ttl.String(), authQuery) // (re)sets aq_rot's password to aqRotPW
		start := time.Now()
		user, err := currentUser(t, h.dsnAs(aqRotUser, aqRotPW)) // the look-up is cached now
		require.NoError(t, err)
		require.Equal(t, aqRotUser, user)

		require.NoError(t, c.CreateRole(ctx, aqRotUser, newPW, "scram-sha-256")) // ALTER ROLE ... PASSWORD
		oldUser, oldErr := currentUser(t, h.dsnAs(aqRotUser, aqRotPW))
		_, newErr := currentUser(t, h.dsnAs(aqRotUser, newPW))
		if took := time.Since(start); took >= ttl {
			require.Less(t, ttl, time.Minute, "even a %s TTL ran out before the logins after ALTER ROLE (%s)", ttl, took)
			t.Logf("the logins after ALTER ROLE took %s, not within the %s TTL: again with a longer one", took, ttl)
			continue
		}
		require.NoError(t, oldErr, "within the TTL the cached verifier still accepts the old password")
		require.Equal(t, aqRotUser, oldUser)
		require.Equal(t, "28P01", pgCode(newErr), "within the TTL the new password is checked against the cached verifier: %v", newErr)
		break
	}

	// Every login so far came after the look-up, so once ttl has passed
	// since now the entry is stale.
	time.Sleep(ttl + 500*time.Millisecond)
	user, err := currentUser(t, h.dsnAs(aqRotUser, newPW))
	require.NoError(t, err, "after the TTL the first login with the new password works")
	require.Equal(t, aqRotUser, user)
	// The entry was just refreshed: the old password no longer works.
	_, err = currentUser(t, h.dsnAs(aqRotUser, aqRotPW))
	require.Equal(t, "28P01", pgCode(err), "%v", err)

	// New server connections log in with the key from the new password:
	// close the server side of every aq_rot connection, then log in again.
	_, err = c.Query(ctx, fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '%s'", aqRotUser))
	require.NoError(t, err)
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows, err := c.Query(ctx, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE usename = '%s'", aqRotUser))
		require.NoError(t, err)
		if rows[0][0] == "0" {
			break
		}
		require.True(t, time.Now().Before(deadline), "terminated backends did not exit")
		time.Sleep(20 * time.Millisecond)
	}
	user, err = currentUser(t, h.dsnAs(aqRotUser, newPW))
	require.NoError(t, err)
	require.Equal(t, aqRotUser, user)
}

func TestAuthQueryFailureIs08006(t *testing.T) {
	h := startAuthQuery(t, "60s", "SELECT usename, passwd FROM no_such_function($1)")
	_, err := currentUser(t, h.dsnAs(aqUser, aqPW))
	require.Equal(t, "08006", pgCode(err), "%v", err)
	require.Contains(t, pgMessage(err), "could not look up the password")
	require.Contains(t, h.logs.String(), "no_such_function")
	// Configured users still log in.
	_, err = currentUser(t, h.dsnAs(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
}
