package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/token"
)

// startTokenProxy starts sluice with the app user switched to auth method
// token (no password; server_password is the role's real password) and
// the public key at pubPath.
func startTokenProxy(t *testing.T, pubPath, topLevel string) *harness {
	t.Helper()
	sock := t.TempDir()
	return startConfig(t, sock, tokenConfigText(t, sock, "  public_key_file: "+pubPath+"\n")+topLevel)
}

// tokenConfigText is the config of startTokenProxy with tokenKeys as the
// body of its token: mapping (each line indented two spaces).
func tokenConfigText(t *testing.T, sock, tokenKeys string) string {
	t.Helper()
	text := configText(t, sock, "", "")
	from := fmt.Sprintf("  - name: %s\n    password: %s\n", pgtest.AppUser, pgtest.AppPassword)
	to := fmt.Sprintf("  - name: %s\n    auth_method: token\n    server_password: %s\n", pgtest.AppUser, pgtest.AppPassword)
	require.Contains(t, text, from)
	text = strings.Replace(text, from, to, 1)
	return text + "token:\n" + tokenKeys + "log:\n  level: debug\n"
}

func TestTokenLogin(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath := filepath.Join(dir, "token.key"), filepath.Join(dir, "token.pub")
	require.NoError(t, token.GenerateKeyPair(privPath, pubPath))
	priv, err := token.LoadPrivateKey(privPath)
	require.NoError(t, err)
	// Five failures are allowed; the sixth attempt is refused up front.
	h := startTokenProxy(t, pubPath, "limits:\n  auth_failure_burst: 5\n")
	ctx := context.Background()
	issue := func(db string, ttl time.Duration, now time.Time) string {
		tok, err := token.Issue(priv, pgtest.AppUser, db, ttl, now)
		require.NoError(t, err)
		return tok
	}

	good := issue(pgtest.AppDB, 15*time.Minute, time.Now())
	c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, good))
	require.NoError(t, err)
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
	require.Equal(t, []string{pgtest.AppUser}, query(t, c, "SELECT current_user"))
	require.NoError(t, c.Close(ctx))

	flipped := []byte(good)
	flipped[len(flipped)/2] ^= 0x01
	bad := map[string]string{
		"expired":          issue(pgtest.AppDB, 15*time.Minute, time.Now().Add(-16*time.Minute)),
		"another database": issue("otherdb", 15*time.Minute, time.Now()),
		"flipped byte":     string(flipped),
		"the password":     pgtest.AppPassword,
		"another key's": func() string {
			p2, q2 := filepath.Join(dir, "k2"), filepath.Join(dir, "k2.pub")
			require.NoError(t, token.GenerateKeyPair(p2, q2))
			k2, err := token.LoadPrivateKey(p2)
			require.NoError(t, err)
			tok, err := token.Issue(k2, pgtest.AppUser, pgtest.AppDB, time.Minute, time.Now())
			require.NoError(t, err)
			return tok
		}(),
	}
	for name, tok := range bad {
		_, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, tok))
		require.Equal(t, "28P01", pgCode(err), "%s: %v", name, err)
		require.Equal(t, fmt.Sprintf("password authentication failed for user %q", pgtest.AppUser), pgMessage(err), name)
	}

	// Bad tokens count as failed logins: even a good token is now refused.
	_, err = pgconn.Connect(ctx, h.dsn(pgtest.AppUser, issue(pgtest.AppDB, time.Minute, time.Now())))
	require.Equal(t, "28000", pgCode(err), "%v", err)
	require.Contains(t, pgMessage(err), "too many failed logins")

	logs := h.logs.String()
	require.Contains(t, logs, "login token rejected")
	require.Contains(t, logs, token.ErrExpired.Error())
	require.Contains(t, logs, token.ErrWrongDatabase.Error())
	for name, tok := range bad {
		require.NotContains(t, logs, tok, "the %s token was logged", name)
	}
	require.NotContains(t, logs, good, "the good token was logged")
	// Not even a recognisable piece of one (its signature part).
	require.NotContains(t, logs, good[strings.LastIndexByte(good, '.')+1:])
}

func TestTokenKeyProblemsStopStartAndReload(t *testing.T) {
	dir := t.TempDir()
	pubPath := filepath.Join(dir, "token.pub")
	text := configText(t, t.TempDir(), "", "") + "token:\n  public_key_file: " + pubPath + "\n"
	cfg, err := config.Parse([]byte(text), nil)
	require.NoError(t, err)
	_, err = proxy.New(cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "token.public_key_file: open "+pubPath)

	// A running sluice keeps its config when the new key cannot be read.
	h := start(t, "")
	require.ErrorContains(t, h.srv.Reload(cfg), "token.public_key_file")
	require.NoError(t, token.GenerateKeyPair(filepath.Join(dir, "token.key"), pubPath))
	require.NoError(t, h.srv.Reload(cfg))
}
