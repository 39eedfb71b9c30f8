package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseHost(t *testing.T) {
	good := []struct{ in, network, addr string }{
		{"127.0.0.1:5432", "tcp", "127.0.0.1:5432"},
		{"db.example.com:6543", "tcp", "db.example.com:6543"},
		{"localhost:1", "tcp", "localhost:1"},
		{"[::1]:5432", "tcp", "[::1]:5432"},
		{"[fe80::1%eth0]:5432", "tcp", "[fe80::1%eth0]:5432"},
		{"/var/run/postgresql:5432", "unix", "/var/run/postgresql/.s.PGSQL.5432"},
		{"/var/run/postgresql/:5433", "unix", "/var/run/postgresql/.s.PGSQL.5433"},
		{"/tmp:65535", "unix", "/tmp/.s.PGSQL.65535"},
		{"/:5432", "unix", "/.s.PGSQL.5432"},
		{"/odd:dir:5432", "unix", "/odd:dir/.s.PGSQL.5432"},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			h, err := ParseHost(tc.in)
			require.NoError(t, err)
			require.Equal(t, Host{Network: tc.network, Address: tc.addr, Display: tc.in}, h)
		})
	}
	bad := []struct{ in, msg string }{
		{"", "empty host"},
		{"localhost", `needs a port: write "localhost:5432"`},
		{"/tmp", `needs a port: write "/tmp:5432"`},
		{"/tmp:", `port "" is not a number`},
		{"/tmp:abc", `port "abc" is not a number`},
		{"/tmp:0", "out of range 1..65535"},
		{"localhost:0", "out of range 1..65535"},
		{"localhost:65536", "out of range 1..65535"},
		{"localhost:+5", `port "+5" is not a number`},
		{"localhost:-5", `port "-5" is not a number`},
		{":5432", "no host name"},
		{"::1:5432", "IPv6 addresses go in brackets"},
		{"a b:5432", "invalid host name"},
		{"host:port", `port "port" is not a number`},
	}
	for _, tc := range bad {
		t.Run("bad/"+tc.in, func(t *testing.T) {
			_, err := ParseHost(tc.in)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestPrimaryHost(t *testing.T) {
	db := &Database{Hosts: []string{"/run/pg:5432", "10.0.0.2:5432"}}
	require.Equal(t, Host{Network: "unix", Address: "/run/pg/.s.PGSQL.5432", Display: "/run/pg:5432"}, db.PrimaryHost())
	require.Equal(t, Host{}, (&Database{}).PrimaryHost())
	require.Equal(t, Host{}, (&Database{Hosts: []string{"nope"}}).PrimaryHost())
}

func TestSocketPath(t *testing.T) {
	require.Equal(t, "", Listen{Address: "127.0.0.1:6432"}.SocketPath())
	require.Equal(t, "/tmp/.s.PGSQL.6432", Listen{Address: "127.0.0.1:6432", SocketDir: "/tmp"}.SocketPath())
	require.Equal(t, "/tmp/.s.PGSQL.7000", Listen{Address: ":7000", SocketDir: "/tmp/"}.SocketPath())
}
