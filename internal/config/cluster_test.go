package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClusterOffByDefault(t *testing.T) {
	cfg := mustParse(t, minimal, nil)
	require.False(t, cfg.Cluster.Enabled())
}

func TestClusterDefaults(t *testing.T) {
	cfg := mustParse(t, minimal+"cluster:\n  etcd:\n    endpoints: [\"127.0.0.1:2379\"]\n", nil)
	require.True(t, cfg.Cluster.Enabled())
	require.False(t, cfg.Cluster.Etcd.TLS())
	require.Equal(t, "/sluice/", cfg.Cluster.Prefix)
	require.Equal(t, DefaultClusterLeaseTTL, cfg.Cluster.LeaseTTL.D())
	require.Equal(t, DefaultEtcdDialTimeout, cfg.Cluster.Etcd.DialTimeout.D())
	require.Equal(t, "db1:6432", cfg.Cluster.InstanceIDFor("db1", "0.0.0.0:6432"))
	require.Equal(t, "db1:6432", cfg.Cluster.AdvertiseFor("db1", "0.0.0.0:6432"))
	require.Equal(t, "db1:6432", cfg.Cluster.AdvertiseFor("db1", "[::]:6432"))
	require.Equal(t, "10.1.2.3:6432", cfg.Cluster.AdvertiseFor("db1", "10.1.2.3:6432"))
}

func TestClusterProblems(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"section without endpoints", "cluster:\n  prefix: /x/\n", "cluster.etcd.endpoints: required when the cluster section is set"},
		{"bad endpoint", "cluster:\n  etcd:\n    endpoints: [\"etcd\"]\n", "cluster.etcd.endpoints[0]: \"etcd\" is not an etcd endpoint"},
		{"bad scheme", "cluster:\n  etcd:\n    endpoints: [\"grpc://etcd:2379\"]\n", "cluster.etcd.endpoints[0]: \"grpc://etcd:2379\" is not an etcd endpoint"},
		{"mixed schemes", "cluster:\n  etcd:\n    endpoints: [\"http://a:2379\", \"https://b:2379\"]\n", "cluster.etcd.endpoints: mixes http:// and https://"},
		{"http with a CA", "cluster:\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    ca_file: /ca\n", "cluster.etcd.endpoints: http:// endpoints never use TLS"},
		{"cert without key", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n    cert_file: /c\n", "cluster.etcd.cert_file: set cluster.etcd.cert_file and cluster.etcd.key_file together"},
		{"password without user", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n    password: x\n", "cluster.etcd.username: set cluster.etcd.username together"},
		{"both passwords", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n    username: u\n    password: x\n    password_file: /p\n", "cluster.etcd.password_file: set either password or password_file"},
		{"zero dial timeout", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n    dial_timeout: 0s\n", "cluster.etcd.dial_timeout: must be > 0"},
		{"slash in id", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n  instance_id: a/b\n", "cluster.instance_id: \"a/b\" may not contain '/'"},
		{"prefix", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n  prefix: sluice\n", "cluster.prefix: must start and end with \"/\""},
		{"wildcard advertise", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n  advertise_address: 0.0.0.0:6432\n", "cluster.advertise_address: \"0.0.0.0:6432\" is a wildcard"},
		{"port 0 advertise", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n  advertise_address: h:0\n", "cluster.advertise_address: port 0 is out of range"},
		{"short ttl", "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n  lease_ttl: 1s\n", "cluster.lease_ttl: must be between 2s and 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+tc.doc), nil)
			require.Error(t, err)
			require.True(t, strings.Contains(err.Error(), tc.want), "want %q in:\n%s", tc.want, err)
		})
	}
}

func TestClusterPasswordFromFileAndEnv(t *testing.T) {
	doc := minimal + "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n    username: sluice\n    password_file: /run/secrets/etcd\n"
	cfg, err := ParseWith([]byte(doc), nil, func(path string) ([]byte, error) {
		require.Equal(t, "/run/secrets/etcd", path)
		return []byte("from-file\n"), nil
	})
	require.NoError(t, err)
	require.Equal(t, "from-file", cfg.Cluster.Etcd.Password)

	doc = minimal + "cluster:\n  etcd:\n    endpoints: [\"e:2379\"]\n    username: sluice\n    password: ${ETCD_PW}\n"
	cfg = mustParse(t, doc, map[string]string{"ETCD_PW": "from-env"})
	require.Equal(t, "from-env", cfg.Cluster.Etcd.Password)
}
