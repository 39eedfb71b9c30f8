package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/auth"
	"github.com/sluice-proxy/sluice/internal/config"
)

// TestAuthMethodMapsPasswordMethods: every method package auth checks is
// reached from config's typed method, and the mapping keeps pg_hba's
// spelling (auth.ParseMethod accepts it).
func TestAuthMethodMapsPasswordMethods(t *testing.T) {
	for m, want := range map[config.AuthMethod]auth.Method{
		config.AuthSCRAM: auth.MethodSCRAM, config.AuthMD5: auth.MethodMD5,
		config.AuthPassword: auth.MethodPassword, config.AuthTrust: auth.MethodTrust,
	} {
		require.Equal(t, want, authMethod(m))
		got, err := auth.ParseMethod(m.String())
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := auth.ParseMethod(string(authMethod(config.AuthToken)))
	require.Error(t, err, "token is checked by the proxy, never by auth")
}
