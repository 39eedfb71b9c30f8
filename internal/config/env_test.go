package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func fakeEnv(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestExpandEnv(t *testing.T) {
	env := fakeEnv(map[string]string{"PW": "s3cret", "EMPTY": "", "A_1": "x", "DOLLAR": "$"})
	good := []struct{ in, want string }{
		{"plain", "plain"},
		{"${PW}", "s3cret"},
		{"pre-${PW}-post", "pre-s3cret-post"},
		{"${PW}${A_1}", "s3cretx"},
		{"${EMPTY}", ""},
		{"$$", "$"},
		{"a$$b", "a$b"},
		{"$${PW}", "${PW}"},
		{"$$$${PW}", "$${PW}"},
		{"$PW", "$PW"},
		{"trailing$", "trailing$"},
		{"${DOLLAR}{PW}", "${PW}"}, // values are not expanded again
		{"SCRAM-SHA-256$4096:c2FsdA==$a:b", "SCRAM-SHA-256$4096:c2FsdA==$a:b"},
	}
	for _, tc := range good {
		got, err := expandEnv(tc.in, env)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	bad := []struct{ in, msg string }{
		{"${NOPE}", "environment variable NOPE is not set"},
		{"${PW", "unterminated ${"},
		{"${}", `invalid environment variable name ""`},
		{"${1X}", `invalid environment variable name "1X"`},
		{"${A-B}", `invalid environment variable name "A-B"`},
	}
	for _, tc := range bad {
		_, err := expandEnv(tc.in, env)
		require.ErrorContains(t, err, tc.msg, tc.in)
	}
}

func TestClassifyPassword(t *testing.T) {
	require.Equal(t, PasswordPlain, ClassifyPassword("secret"))
	require.Equal(t, PasswordPlain, ClassifyPassword("md5short"))
	require.Equal(t, PasswordPlain, ClassifyPassword("md5AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "upper-case hex is not a hash, as in PostgreSQL")
	require.Equal(t, PasswordMD5, ClassifyPassword("md50123456789abcdef0123456789abcdef"))
	require.Equal(t, PasswordSCRAM, ClassifyPassword("SCRAM-SHA-256$anything"))
	require.Equal(t, PasswordSCRAM, (&User{Password: testVerifier}).PasswordKind())
	require.NoError(t, checkSCRAM(testVerifier))
}
