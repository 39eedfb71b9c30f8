package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Verifiers computed independently of this package (Python hashlib.pbkdf2_hmac
// with PostgreSQL's StoredKey/ServerKey definitions). The "pencil" one uses
// the salt and iteration count of the RFC 7677 SCRAM-SHA-256 test vector.
const (
	appPwVerifier  = "SCRAM-SHA-256$4096:c2x1aWNlLXRlc3Qtc2FsdA==$DqXq8BtFi2TGfx6wGK1ag5TqWWLmQ4Qk+rHntEzOOgA=:bl1Xumpt4a8IFq3tZj47XGVU1ov6C1nG92tsNY54GOI="
	pencilVerifier = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	// appPwMD5 is "md5" + md5("app_pw" + "app").
	appPwMD5 = "md5ad24799cb1934697a928bf89afe75bb6"
)

func TestNewCredentialsForms(t *testing.T) {
	plain := mustCreds(t, "app", "app_pw")
	require.True(t, plain.HasPlaintext())
	pw, ok := plain.Plaintext()
	require.True(t, ok)
	require.Equal(t, "app_pw", pw)
	require.Equal(t, appPwMD5, plain.md5Hash)
	require.True(t, plain.hasSCRAM)
	require.Equal(t, defaultSCRAMIterations, plain.scram.Iters)
	require.Len(t, plain.scram.Salt, saltLen)
	require.Equal(t, "app", plain.User())

	// Two preparations of the same password use different random salts.
	require.NotEqual(t, plain.scram.Salt, mustCreds(t, "app", "app_pw").scram.Salt)

	md5c := mustCreds(t, "app", "md5"+strings.ToUpper(appPwMD5[3:]))
	require.False(t, md5c.HasPlaintext())
	require.False(t, md5c.hasSCRAM)
	require.Empty(t, md5c.SCRAMVerifier())
	require.Equal(t, "md5"+appPwMD5[3:], md5c.md5Hash, "hex is normalised to lower case")

	sc := mustCreds(t, "app", appPwVerifier)
	require.False(t, sc.HasPlaintext())
	require.Empty(t, sc.md5Hash)
	require.Equal(t, appPwVerifier, sc.SCRAMVerifier(), "verifier round-trips")
}

// TestDerivedVerifierMatchesIndependentOne checks our PBKDF2 derivation against
// verifiers computed outside Go.
func TestDerivedVerifierMatchesIndependentOne(t *testing.T) {
	for _, tc := range []struct{ password, verifier string }{
		{"app_pw", appPwVerifier},
		{"pencil", pencilVerifier},
	} {
		want, err := parseSCRAMVerifier(tc.verifier)
		require.NoError(t, err)
		got, err := deriveSCRAM(tc.password, want.KeyFactors)
		require.NoError(t, err)
		require.Equal(t, want, got, tc.password)
	}
	// And a freshly prepared plaintext yields a verifier that parses back.
	v := mustCreds(t, "app", "app_pw").SCRAMVerifier()
	back := mustCreds(t, "app", v)
	got, err := deriveSCRAM("app_pw", back.scram.KeyFactors)
	require.NoError(t, err)
	require.Equal(t, back.scram, got)
}

func TestNewCredentialsMalformed(t *testing.T) {
	for _, bad := range []string{
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096",
		"SCRAM-SHA-256$4096:c2FsdA==",
		"SCRAM-SHA-256$4096:c2FsdA==$",
		"SCRAM-SHA-256$0:c2FsdA==$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("A", 43) + "=",
		"SCRAM-SHA-256$-1:c2FsdA==$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("A", 43) + "=",
		"SCRAM-SHA-256$x:c2FsdA==$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("A", 43) + "=",
		"SCRAM-SHA-256$4096:!!!$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("A", 43) + "=",
		"SCRAM-SHA-256$4096:$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("A", 43) + "=",
		"SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:" + strings.Repeat("A", 43) + "=",
		"SCRAM-SHA-256$4096:c2FsdA==$" + strings.Repeat("A", 43) + "=",
		"md5" + strings.Repeat("z", 32),
		"md5" + strings.Repeat("0", 31) + "g",
		"",
	} {
		_, err := NewCredentials("app", bad)
		require.Error(t, err, bad)
	}
	// Near misses that are plain passwords, as PostgreSQL would treat them.
	for _, plain := range []string{"md5", "md5" + strings.Repeat("0", 31), "scram-sha-256$x"} {
		c, err := NewCredentials("app", plain)
		require.NoError(t, err, plain)
		require.True(t, c.HasPlaintext(), plain)
	}
}
