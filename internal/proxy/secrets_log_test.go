package proxy_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/token"
)

// TestSecretsNeverLogged logs in every way that handles a secret, with
// log level debug, and then greps the whole log for every secret: the
// passwords (inline, from ${ENV} and from files), the file contents, the
// tokens (good and tampered), the wrong passwords clients sent and the md5
// hashes.
func TestSecretsNeverLogged(t *testing.T) {
	dir := t.TempDir()
	// app's password comes from a file; md5user logs in with tokens and
	// sluice logs it in to PostgreSQL with a server password from a file.
	appFile := filepath.Join(dir, "app.password")
	require.NoError(t, os.WriteFile(appFile, []byte(pgtest.AppPassword+"\n"), 0o600))
	// Its server password has a file of its own, so that rotating the
	// client password below does not change what sluice sends to
	// PostgreSQL: whether the rotated login then reuses an idle server
	// connection or dials one (settings affinity decides) must not matter.
	appServerFile := filepath.Join(dir, "app.server-password")
	require.NoError(t, os.WriteFile(appServerFile, []byte(pgtest.AppPassword+"\n"), 0o600))
	md5File := filepath.Join(dir, "md5user.server-password")
	require.NoError(t, os.WriteFile(md5File, []byte(pgtest.MD5Password+"\n"), 0o600))
	privPath, pubPath := filepath.Join(dir, "token.key"), filepath.Join(dir, "token.pub")
	require.NoError(t, token.GenerateKeyPair(privPath, pubPath))
	priv, err := token.LoadPrivateKey(privPath)
	require.NoError(t, err)

	// envUser's password comes from the environment (${ENV}); sluice also
	// logs in to PostgreSQL with it.
	const envUser, envPW = "secrets_env", "env-secret-Vx7"
	t.Setenv("SLUICE_TEST_ENV_PASSWORD", envPW)
	c := pgtest.Cluster(t)
	require.NoError(t, c.CreateRole(context.Background(), envUser, envPW, "scram-sha-256"))
	sock := t.TempDir()
	text := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
  socket_dir: %s
admin:
  address: ""
shutdown_timeout: 5s
log:
  level: debug
token:
  public_key_file: %s
users:
  - name: %s
    password_file: %s
    server_password_file: %s
  - name: %s
    auth_method: token
    server_password_file: %s
  - name: %s
    password: ${SLUICE_TEST_ENV_PASSWORD}
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
    pool:
      min_size: 1
`, sock, pubPath, pgtest.AppUser, appFile, appServerFile, pgtest.MD5User, md5File, envUser, pgtest.AppDB, c.Port)
	h := startConfigEnv(t, sock, text, os.LookupEnv)
	ctx := context.Background()

	// Password logins: pgx and psql, right and wrong.
	conn := h.connect(ctx)
	require.Equal(t, []string{pgtest.AppUser}, query(t, conn, "SELECT current_user"))
	out, err := psql(t, []string{"PGPASSWORD=" + pgtest.AppPassword}, "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-d", pgtest.AppDB, "-c", "SELECT 1")
	require.NoError(t, err, out)
	const wrong = "wrong-secret-Kq8"
	_, err = pgconn.Connect(ctx, h.dsn(pgtest.AppUser, wrong))
	require.Equal(t, "28P01", pgCode(err))
	ec, err := pgconn.Connect(ctx, h.dsn(envUser, envPW))
	require.NoError(t, err)
	require.Equal(t, []string{envUser}, query(t, ec, "SELECT current_user"))
	require.NoError(t, ec.Close(ctx))
	out, err = psql(t, []string{"PGPASSWORD=" + envPW}, "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", envUser, "-d", pgtest.AppDB, "-c", "SELECT 1")
	require.NoError(t, err, out)

	// Token logins: good, tampered, expired.
	good, err := token.Issue(priv, pgtest.MD5User, pgtest.AppDB, time.Minute, time.Now())
	require.NoError(t, err)
	tc, err := pgconn.Connect(ctx, h.dsn(pgtest.MD5User, good))
	require.NoError(t, err)
	require.Equal(t, []string{pgtest.MD5User}, query(t, tc, "SELECT current_user"))
	require.NoError(t, tc.Close(ctx))
	flipped := []byte(good)
	flipped[len(flipped)/2] ^= 0x01
	expired, err := token.Issue(priv, pgtest.MD5User, pgtest.AppDB, time.Minute, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	for _, bad := range []string{string(flipped), expired} {
		_, err = pgconn.Connect(ctx, h.dsn(pgtest.MD5User, bad))
		require.Equal(t, "28P01", pgCode(err))
	}

	// A reload re-reads the password files: rotate app's, and the new
	// one works.
	const rotated = "rotated-secret-Zp3"
	require.NoError(t, os.WriteFile(appFile, []byte(rotated+"\n"), 0o600))
	cfg2, err := config.ParseWith([]byte(text), os.LookupEnv, config.ReadSecretFile)
	require.NoError(t, err)
	require.Equal(t, rotated, cfg2.User(pgtest.AppUser).Password)
	require.NoError(t, h.srv.Reload(cfg2))
	_, err = pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.Equal(t, "28P01", pgCode(err), "the old password is gone")
	rc, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, rotated))
	require.NoError(t, err)
	require.NoError(t, rc.Close(ctx))

	md5Of := func(pw, user string) string {
		sum := md5.Sum([]byte(pw + user))
		return hex.EncodeToString(sum[:])
	}
	logs := h.logs.String()
	require.Contains(t, logs, "level=DEBUG", "the log ran at debug level")
	require.Contains(t, logs, "login token rejected", "token failures are logged (without the token)")
	for name, secret := range map[string]string{
		"app password (file)":            pgtest.AppPassword,
		"md5user server password (file)": pgtest.MD5Password,
		"secrets_env password (${ENV})":  envPW,
		"rotated password":               rotated,
		"wrong password":                 wrong,
		"token":                          good,
		"token signature":                good[strings.LastIndexByte(good, '.')+1:],
		"tampered token":                 string(flipped),
		"expired token":                  expired,
		"app md5 hash":                   md5Of(pgtest.AppPassword, pgtest.AppUser),
		"md5user md5 hash":               md5Of(pgtest.MD5Password, pgtest.MD5User),
		"secrets_env md5 hash":           md5Of(envPW, envUser),
	} {
		require.NotContains(t, logs, secret, "the log shows the %s", name)
	}
}
