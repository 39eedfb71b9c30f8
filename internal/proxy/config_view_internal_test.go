package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
)

// SHOW CONFIG lists the cluster keys as needing a restart and never
// shows the etcd password.
func TestConfigViewClusterKeys(t *testing.T) {
	cfg, err := config.Parse([]byte(`
users: [{name: app, password: secret}]
databases: {appdb: {hosts: ["127.0.0.1:5432"]}}
cluster:
  etcd:
    endpoints: ["10.0.0.5:2379"]
    username: sluice
    password: etcd-secret-value
`), nil)
	require.NoError(t, err)
	byKey := map[string][2]any{}
	for _, s := range configView(cfg) {
		byKey[s.Key] = [2]any{s.Value, s.Changeable}
	}
	require.Equal(t, [2]any{"(set)", false}, byKey["cluster.etcd.password"])
	require.Equal(t, [2]any{"[10.0.0.5:2379]", false}, byKey["cluster.etcd.endpoints"])
	require.Equal(t, [2]any{"10s", false}, byKey["cluster.lease_ttl"])
	require.Equal(t, [2]any{"/sluice/", false}, byKey["cluster.prefix"])
	for k, v := range byKey {
		require.NotContains(t, v[0], "etcd-secret-value", k)
	}
}
