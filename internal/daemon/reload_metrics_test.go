package daemon_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/metricstest"
	"github.com/sluice-proxy/sluice/internal/version"
)

// A reload's outcome is visible in the metrics as Prometheus shows its
// own (config_last_reload_successful, ..._success_timestamp_seconds),
// plus a failure counter, so an alert can tell that a SIGHUP was refused
// and the old configuration still runs. The build is identified too.
func TestReloadAndBuildMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeConfig(t, path, "info", freePort(t))
	d, _ := startDaemonAt(t, path)
	defer d.Shutdown()
	reg := d.Proxy.Metrics().Registry
	value := func(name string) float64 {
		t.Helper()
		v, ok := metricstest.Value(t, reg, name)
		require.True(t, ok, name)
		return v
	}

	v, ok := metricstest.Value(t, reg, "sluice_build_info", "version", version.Version, "revision", version.Commit, "goversion", runtime.Version())
	require.True(t, ok, "sluice_build_info{version,revision,goversion}")
	require.Equal(t, 1.0, v)

	require.Equal(t, 1.0, value("sluice_config_last_reload_successful"), "after start-up")
	started := value("sluice_config_last_reload_success_timestamp_seconds")
	require.Positive(t, started)
	require.Zero(t, value("sluice_config_reload_failures_total"))

	require.NoError(t, os.WriteFile(path, []byte("listen: {adress: x}\n"), 0o600))
	d.Reload()
	require.Zero(t, value("sluice_config_last_reload_successful"), "after an invalid file")
	require.Equal(t, 1.0, value("sluice_config_reload_failures_total"))
	require.Equal(t, started, value("sluice_config_last_reload_success_timestamp_seconds"), "a failed reload is no success")

	writeConfig(t, path, "debug", freePort(t))
	d.Reload()
	require.Equal(t, 1.0, value("sluice_config_last_reload_successful"), "after a valid file")
	require.Equal(t, 1.0, value("sluice_config_reload_failures_total"))
	require.GreaterOrEqual(t, value("sluice_config_last_reload_success_timestamp_seconds"), started)
}
