// Package sluicetest runs a whole sluice inside a test's process from a
// config text, for the behaviour tests of every package that needs one
// (proxy's own, hatest, the TLS tests).
package sluicetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// NoEnv resolves no ${VAR}: tests then do not depend on the environment
// they run in.
func NoEnv(string) (string, bool) { return "", false }

// Start parses text (${VAR} in passwords through lookupEnv, nil for
// NoEnv), starts sluice with a log at the config's level kept in the
// returned buffer, and shuts it down when the test ends, printing the log
// if the test failed.
func Start(t testing.TB, text string, lookupEnv func(string) (string, bool)) (*proxy.Server, *config.Config, *syncbuf.Buffer) {
	t.Helper()
	if lookupEnv == nil {
		lookupEnv = NoEnv
	}
	cfg, err := config.ParseWith([]byte(text), lookupEnv, config.ReadSecretFile)
	require.NoError(t, err)
	var level slog.Level
	require.NoError(t, level.UnmarshalText([]byte(cfg.Log.Level)))
	logs := &syncbuf.Buffer{}
	srv, err := proxy.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level})))
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
	})
	return srv, cfg, logs
}
