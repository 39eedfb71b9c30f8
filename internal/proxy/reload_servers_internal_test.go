package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
)

// Which RELOADed changes retire a database's server connections: where
// and how they log in, not pool sizes or dial tuning; a multi-host
// database's hosts wait for a restart (its monitor keeps them).
func TestServerMoved(t *testing.T) {
	base := config.Database{Name: "db", Hosts: []string{"10.0.0.1:5432"}, DBName: "db"}
	for _, c := range []struct {
		name   string
		change func(*config.Database)
		multi  bool
		moved  bool
	}{
		{"same", func(*config.Database) {}, false, false},
		{"host", func(d *config.Database) { d.Hosts = []string{"10.0.0.2:5432"} }, false, true},
		{"port", func(d *config.Database) { d.Hosts = []string{"10.0.0.1:5433"} }, false, true},
		{"hosts of a multi-host database", func(d *config.Database) { d.Hosts = []string{"10.0.0.2:5432", "10.0.0.3:5432"} }, true, false},
		{"dbname", func(d *config.Database) { d.DBName = "other" }, false, true},
		{"network", func(d *config.Database) { d.Backend.Network = "unix" }, false, true},
		{"server_tls", func(d *config.Database) { d.ServerTLS.Mode = config.ServerTLSRequire }, false, true},
		{"pool size", func(d *config.Database) { d.Pool.MaxSize = 99 }, false, false},
		{"dial tuning", func(d *config.Database) { d.Backend.Retries = 9; d.Backend.DialTimeout = config.Duration(1) }, false, false},
	} {
		next := base
		next.Hosts = append([]string(nil), base.Hosts...)
		c.change(&next)
		require.Equal(t, c.moved, serverMoved(&base, &next, !c.multi), c.name)
	}
}
