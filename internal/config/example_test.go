package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var exampleEnv = map[string]string{"APP_PASSWORD": "app-secret", "REPORTING_SERVER_PASSWORD": "rep-secret", "MONITOR_PASSWORD": "mon-secret", "SLUICE_API_TOKEN": "0123456789abcdef0123", "ETCD_PASSWORD": "etcd-secret"}

// exampleFiles stands in for password files: every path holds its own
// base name and a newline.
func exampleFiles(path string) ([]byte, error) {
	return []byte(path[strings.LastIndexByte(path, '/')+1:] + "\n"), nil
}

// keyPaths lists every leaf key of the Config tree as it is written in the
// docs: "listen.address", "users[].name", "databases.<name>.pool.max_size".
func keyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		p := tag
		if prefix != "" {
			p = prefix + "." + tag
		}
		ft := t.Field(i).Type
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType:
			out = append(out, keyPaths(ft, p)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, keyPaths(ft.Elem(), p+"[]")...)
		case ft.Kind() == reflect.Map:
			out = append(out, keyPaths(ft.Elem().Elem(), p+".<name>")...)
		default:
			out = append(out, p)
		}
	}
	return out
}

// yamlPaths lists the leaf keys set in a document, normalised like keyPaths.
func yamlPaths(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		yamlPaths(n.Content[0], prefix, out)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix == "databases" {
				key = "<name>"
			}
			p := key
			if prefix != "" {
				p = prefix + "." + key
			}
			yamlPaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		if len(n.Content) > 0 && n.Content[0].Kind == yaml.MappingNode {
			for _, el := range n.Content {
				yamlPaths(el, prefix+"[]", out)
			}
			return
		}
		out[prefix] = true
	default:
		out[prefix] = true
	}
}

func TestKeyPathsSanity(t *testing.T) {
	paths := keyPaths(reflect.TypeFor[Config](), "")
	require.Contains(t, paths, "databases.<name>.backend.disable_backoff_caps")
	require.Contains(t, paths, "users[].server_password")
	require.Contains(t, paths, "shutdown_timeout")
	require.NotContains(t, paths, "databases.<name>.name")
	require.Contains(t, paths, "cluster.etcd.endpoints")
	require.Len(t, paths, 93)
}

func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	require.NoError(t, err)
	cfg, err := ParseWith(data, fakeEnv(exampleEnv), exampleFiles)
	require.NoError(t, err)

	var root yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &root))
	set := map[string]bool{}
	yamlPaths(&root, "", set)
	for _, p := range keyPaths(reflect.TypeFor[Config](), "") {
		require.True(t, set[p], "testdata/example.yaml does not set %s", p)
	}

	require.Equal(t, "/tmp/.s.PGSQL.6432", cfg.Listen.SocketPath())
	require.Equal(t, "json", cfg.Log.Format)
	require.Equal(t, "app-secret", cfg.User("app").Password)
	require.Equal(t, "rep-secret", cfg.User("reporting").ServerPassword)
	require.Equal(t, "pa$word", cfg.User("legacy").ServerPassword)
	require.Equal(t, "sluice_auth.password", cfg.User("sluice_auth").Password)
	require.Equal(t, "sluice_auth.server-password", cfg.User("sluice_auth").ServerPassword)
	require.Equal(t, "sluice_auth", cfg.Auth.AuthUser)
	require.Equal(t, "app_production", cfg.Databases["appdb"].DBName)
	require.Equal(t, 2, cfg.Databases["appdb"].Pool.MinSize)
	require.Equal(t, "reports", cfg.Databases["reports"].DBName)
	require.Equal(t, Host{Network: "unix", Address: "/var/run/postgresql/.s.PGSQL.5432", Display: "/var/run/postgresql:5432"},
		cfg.Databases["reports"].PrimaryHost())
	require.Equal(t, time.Duration(0), cfg.Databases["reports"].Pool.BorrowTimeout.D())
	require.Equal(t, TLS{Mode: TLSRequire, CertFile: "/etc/sluice/server.crt", KeyFile: "/etc/sluice/server.key",
		ClientCAFile: "/etc/sluice/client-ca.crt", MinVersion: TLS12}, cfg.TLS)
	require.Equal(t, ServerTLS{Mode: ServerTLSVerifyFull, CAFile: "/etc/sluice/pg-ca.crt",
		CertFile: "/etc/sluice/sluice-client.crt", KeyFile: "/etc/sluice/sluice-client.key"}, cfg.Databases["appdb"].ServerTLS)
	require.Equal(t, ServerTLSPrefer, cfg.Databases["reports"].ServerTLS.Mode)
	require.Equal(t, AccessRule{CIDR: "10.0.0.0/8", Users: []string{"app", "reporting"}, Databases: []string{"appdb", "reports"},
		Method: AuthSCRAM, TLS: AccessTLSRequired}, cfg.Access[1])
	require.Len(t, cfg.AccessRules(), 3)

	require.Equal(t, "127.0.0.1:6433", cfg.Listen.ReadOnlyAddress)
	appdb := cfg.Databases["appdb"]
	require.Equal(t, []string{"10.0.0.1:5432", "10.0.0.2:5432"}, appdb.Hosts)
	require.Equal(t, time.Second, appdb.HealthCheckInterval.D())
	require.Equal(t, 3*time.Second, appdb.HealthCheckTimeout.D())
	require.Equal(t, 10*time.Second, appdb.MaxReplicaLag.D())
	require.Equal(t, "primary", appdb.ReadOnlyFallback)
	require.Equal(t, Failover{User: "sluice_monitor", AutoPromote: true, PromoteAfter: Duration(10 * time.Second)}, appdb.Failover)
	require.Equal(t, "mon-secret", cfg.User("sluice_monitor").ServerPassword)
	require.Equal(t, Failover{PromoteAfter: Duration(DefaultPromoteAfter)}, cfg.Databases["reports"].Failover)

	require.True(t, cfg.Cluster.Enabled())
	require.Equal(t, "etcd-secret", cfg.Cluster.Etcd.Password)
	require.True(t, cfg.Cluster.Etcd.TLS())
	require.Equal(t, "proxy-1", cfg.Cluster.InstanceIDFor("host", "0.0.0.0:6432"))
	require.Equal(t, "10.0.0.21:6432", cfg.Cluster.AdvertiseFor("host", "0.0.0.0:6432"))
}

// TestDocsCoverEveryKey keeps docs/configuration.md in step with the structs:
// every key must appear there in backticks with its full path, and the
// example at the top must parse clean.
func TestDocsCoverEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	doc := string(data)
	for _, p := range keyPaths(reflect.TypeFor[Config](), "") {
		require.Contains(t, doc, "`"+p+"`", "docs/configuration.md does not document %s", p)
	}
	for _, v := range slices.Concat(LogLevels, LogFormats, AuthMethods, PoolModes, ReadOnlyFallbacks, TLSModes, TLSVersions, ServerTLSModes, PinPolicies) {
		require.Contains(t, doc, "`"+v+"`", "docs/configuration.md does not mention value %s", v)
	}

	start := strings.Index(doc, "```yaml\n")
	require.GreaterOrEqual(t, start, 0, "docs need a yaml example")
	rest := doc[start+len("```yaml\n"):]
	example := rest[:strings.Index(rest, "```")]
	_, err = ParseWith([]byte(example), fakeEnv(exampleEnv), exampleFiles)
	require.NoError(t, err, "the example in docs/configuration.md must parse")
}
