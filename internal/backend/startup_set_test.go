package backend_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

func TestStartupSetLastValueWinsAndKeys(t *testing.T) {
	set := backend.NewStartupSet([]backend.Setting{{"client_encoding", "SQL_ASCII"}, {"DateStyle", "SQL"}, {"client_encoding", "UTF8"}})
	require.Equal(t, []backend.Setting{{"client_encoding", "UTF8"}, {"datestyle", "SQL"}}, set.Settings, "lower-case names, sorted, the last value")
	same := backend.NewStartupSet([]backend.Setting{{"datestyle", "SQL"}, {"client_encoding", "UTF8"}})
	require.Equal(t, set.Key, same.Key, "order and case of names do not matter")
	require.NotEqual(t, set.Key, backend.NewStartupSet([]backend.Setting{{"datestyle", "ISO"}, {"client_encoding", "UTF8"}}).Key)
	require.Zero(t, backend.NewStartupSet(nil).Key, "the empty set is the pool's own connections' key")
	require.NotZero(t, set.Key)
	ctx := backend.WithStartup(context.Background(), set)
	require.Same(t, set, backend.StartupFrom(ctx))
	require.Nil(t, backend.StartupFrom(context.Background()))
}

// A connection opened with a set carries it in its startup packet:
// PostgreSQL reports the values and records them with source client.
func TestDialSendsStartupSet(t *testing.T) {
	o := opts(t, pgtest.AppUser, pgtest.AppPassword)
	o.Startup = backend.NewStartupSet([]backend.Setting{{"DateStyle", "Postgres, MDY"}, {"ignore_system_indexes", "on"}, {"user", "postgres"}})
	c := dial(t, o)
	require.Equal(t, "Postgres, MDY", c.Params["DateStyle"])
	require.True(t, c.OpenedWith(o.Startup))
	require.False(t, c.OpenedWith(nil))
	require.Equal(t, o.Startup.Key, c.SettingsKey())
	rows, err := c.Query(context.Background(), "SELECT current_user, (SELECT source FROM pg_settings WHERE name = 'ignore_system_indexes')")
	require.NoError(t, err)
	require.Equal(t, pgtest.AppUser, string(rows[0][0]), "a setting named user never replaces the login's")
	require.Equal(t, "client", string(rows[0][1]))
}
