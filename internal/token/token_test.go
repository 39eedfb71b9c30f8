package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testKey is fixed so that the fuzz seed corpus holds validly signed tokens.
var testPriv = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

var testPub = testPriv.Public().(ed25519.PublicKey)

var t0 = time.Unix(1_800_000_000, 0)

func issue(t *testing.T, user, db string, ttl time.Duration, now time.Time) string {
	t.Helper()
	tok, err := Issue(testPriv, user, db, ttl, now)
	require.NoError(t, err)
	return tok
}

func TestRoundTrip(t *testing.T) {
	tok := issue(t, "app", "appdb", 15*time.Minute, t0)
	require.True(t, strings.HasPrefix(tok, Prefix))
	require.NoError(t, Verify(testPub, tok, "app", "appdb", t0))
	require.NoError(t, Verify(testPub, tok, "app", "appdb", t0.Add(15*time.Minute-time.Second)))
}

func TestRejections(t *testing.T) {
	tok := issue(t, "app", "appdb", 15*time.Minute, t0)
	otherPub, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	for _, c := range []struct {
		name, user, db string
		pub            ed25519.PublicKey
		now            time.Time
		want           error
	}{
		{"expired", "app", "appdb", testPub, t0.Add(15 * time.Minute), ErrExpired},
		{"long expired", "app", "appdb", testPub, t0.Add(24 * time.Hour), ErrExpired},
		{"wrong user", "admin", "appdb", testPub, t0, ErrWrongUser},
		{"wrong database", "app", "otherdb", testPub, t0, ErrWrongDatabase},
		{"other key", "app", "appdb", otherPub, t0, ErrSignature},
		{"issued in the future", "app", "appdb", testPub, t0.Add(-ClockSkew - time.Second), ErrNotYetValid},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorIs(t, Verify(c.pub, tok, c.user, c.db, c.now), c.want)
		})
	}
	// Within the allowed clock skew a token from the future is fine.
	require.NoError(t, Verify(testPub, tok, "app", "appdb", t0.Add(-ClockSkew)))
}

func TestEveryFlippedByteIsRejected(t *testing.T) {
	tok := issue(t, "app", "appdb", 15*time.Minute, t0)
	for i := range len(tok) {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			b := []byte(tok)
			b[i] ^= bit
			err := Verify(testPub, string(b), "app", "appdb", t0)
			require.Error(t, err, "byte %d ^ %#x accepted", i, bit)
			require.NotContains(t, err.Error(), string(b))
		}
	}
	// Truncations and extensions too.
	for i := range len(tok) {
		require.Error(t, Verify(testPub, tok[:i], "app", "appdb", t0), "prefix of %d bytes accepted", i)
	}
	require.Error(t, Verify(testPub, tok+"A", "app", "appdb", t0))
	require.Error(t, Verify(testPub, tok+".", "app", "appdb", t0))
}

// TestOneSpelling inserts bytes outside the token alphabet into a valid
// token: Go's base64 decoder skips '\r' and '\n', so before the alphabet
// check a line break inside the signature still verified.
func TestOneSpelling(t *testing.T) {
	tok := issue(t, "app", "appdb", 15*time.Minute, t0)
	for _, c := range []string{"\r", "\n", "\r\n", " ", "\t", "=", "+", "/", "\x00", "\xff"} {
		for i := len(Prefix); i <= len(tok); i++ {
			bad := tok[:i] + c + tok[i:]
			require.ErrorIs(t, Verify(testPub, bad, "app", "appdb", t0), ErrMalformed, "%q inserted at %d", c, i)
		}
	}
}

func TestMalformed(t *testing.T) {
	tok := issue(t, "app", "appdb", 15*time.Minute, t0)
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	sign := func(payload string) string { // validly signed, bad content
		s := Prefix + payload
		return s + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(testPriv, []byte(s)))
	}
	for name, bad := range map[string]string{
		"empty":            "",
		"a password":       "app_pw",
		"no signature":     parts[0] + "." + parts[1],
		"bad base64 body":  parts[0] + ".!!!!." + parts[2],
		"bad base64 sig":   parts[0] + "." + parts[1] + ".%%%",
		"padded sig":       tok + "==",
		"std base64 sig":   parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/",
		"four parts":       parts[0] + "." + parts[1] + ".x." + parts[2],
		"other version":    "sluice2." + parts[1] + "." + parts[2],
		"too long":         tok + strings.Repeat("A", MaxLen),
		"signed non-JSON":  sign(base64.RawURLEncoding.EncodeToString([]byte("not json"))),
		"signed JSON null": sign(base64.RawURLEncoding.EncodeToString([]byte(`{"u":1}`))),
	} {
		t.Run(name, func(t *testing.T) {
			err := Verify(testPub, bad, "app", "appdb", t0)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func TestIssueRejectsBadInput(t *testing.T) {
	_, err := Issue(testPriv, "app", "appdb", 0, t0)
	require.Error(t, err)
	_, err = Issue(testPriv, "", "appdb", time.Minute, t0)
	require.Error(t, err)
	_, err = Issue(ed25519.PrivateKey{1, 2}, "app", "appdb", time.Minute, t0)
	require.Error(t, err)
	require.Error(t, Verify(ed25519.PublicKey{1}, "x", "app", "appdb", t0))
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")
	require.NoError(t, GenerateKeyPair(priv, pub))
	fi, err := os.Stat(priv)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.Error(t, GenerateKeyPair(priv, pub+"2"), "must not overwrite")

	sk, err := LoadPrivateKey(priv)
	require.NoError(t, err)
	pk, err := LoadPublicKey(pub)
	require.NoError(t, err)
	tok, err := Issue(sk, "app", "appdb", time.Minute, t0)
	require.NoError(t, err)
	require.NoError(t, Verify(pk, tok, "app", "appdb", t0))

	// Each loader rejects the other kind of file, garbage and missing files.
	_, err = LoadPrivateKey(pub)
	require.Error(t, err)
	_, err = LoadPublicKey(priv)
	require.Error(t, err)
	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600))
	_, err = LoadPublicKey(garbage)
	require.Error(t, err)
	_, err = LoadPrivateKey(filepath.Join(dir, "missing"))
	require.True(t, errors.Is(err, os.ErrNotExist))
}
