package access

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

func tcp(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 5000} }

var unixAddr = &net.UnixAddr{Name: "", Net: "unix"}

func mustSource(t *testing.T, s string) Source {
	t.Helper()
	src, err := ParseSource(s)
	require.NoError(t, err, s)
	return src
}

func TestParseSource(t *testing.T) {
	for _, bad := range []string{"", "10.0.0/33", "10.0.0.0/33", "10.0.0.300", "fe80::1%eth0", "host.example", "::/129", "local/8"} {
		_, err := ParseSource(bad)
		require.Error(t, err, bad)
	}
	_, err := ParseSource("10.0.0/33")
	require.EqualError(t, err, `invalid CIDR "10.0.0/33": use a form such as "10.0.0.0/8" or "fd00::/8"`)

	cases := []struct {
		src     string
		in, out []net.Addr
	}{
		{"all", []net.Addr{tcp("1.2.3.4"), tcp("::1"), unixAddr, nil}, nil},
		{"local", []net.Addr{unixAddr, nil}, []net.Addr{tcp("127.0.0.1"), tcp("::1")}},
		{"10.0.0.0/8", []net.Addr{tcp("10.0.0.1"), tcp("10.255.255.255"), tcp("::ffff:10.1.2.3")}, []net.Addr{tcp("11.0.0.1"), unixAddr, tcp("::1")}},
		{"10.1.2.3/8", []net.Addr{tcp("10.9.9.9")}, []net.Addr{tcp("9.1.2.3")}}, // host bits are ignored, as in pg_hba
		{"127.0.0.1", []net.Addr{tcp("127.0.0.1")}, []net.Addr{tcp("127.0.0.2"), unixAddr}},
		{"::ffff:192.168.0.0/112", []net.Addr{tcp("192.168.7.7")}, []net.Addr{tcp("192.169.0.1")}},
		{"fd00::/8", []net.Addr{tcp("fd12::1")}, []net.Addr{tcp("fe80::1"), tcp("10.0.0.1")}},
		{"::1", []net.Addr{tcp("::1")}, []net.Addr{tcp("127.0.0.1"), unixAddr}},
		{"0.0.0.0/0", []net.Addr{tcp("8.8.8.8")}, []net.Addr{tcp("2001:db8::1"), unixAddr}},
	}
	for _, tc := range cases {
		s := mustSource(t, tc.src)
		for _, a := range tc.in {
			require.True(t, s.Contains(a), "%s should contain %v", tc.src, a)
		}
		for _, a := range tc.out {
			require.False(t, s.Contains(a), "%s should not contain %v", tc.src, a)
		}
	}
	require.False(t, Source{}.Contains(tcp("1.2.3.4")), "the zero Source matches nothing")
	require.False(t, Source{}.Contains(unixAddr))
}

func TestRulesFirstMatchWins(t *testing.T) {
	rs := Rules{
		{Source: mustSource(t, "10.0.0.66"), Method: MethodReject},                                     // 0
		{Source: mustSource(t, "10.0.0.0/8"), Users: []string{"admin"}, Method: "scram-sha-256"},       // 1
		{Source: mustSource(t, "10.0.0.0/8"), Databases: []string{"reports"}, Method: "password"},      // 2
		{Source: mustSource(t, "10.0.0.0/8")},                                                          // 3
		{Source: mustSource(t, "local"), Users: []string{"ops"}, Method: "trust"},                      // 4
		{Source: mustSource(t, "2001:db8::/32"), Users: []string{"app"}, Databases: []string{"appdb"}}, // 5
	}
	cases := []struct {
		addr     net.Addr
		user, db string
		want     int
		allowed  bool
		method   string
	}{
		{tcp("10.0.0.66"), "admin", "appdb", 0, false, MethodReject},
		{tcp("10.0.0.5"), "admin", "reports", 1, true, "scram-sha-256"},
		{tcp("10.0.0.5"), "app", "reports", 2, true, "password"},
		{tcp("10.0.0.5"), "app", "appdb", 3, true, ""},
		{tcp("11.0.0.5"), "app", "appdb", -1, false, ""},
		{unixAddr, "ops", "appdb", 4, true, "trust"},
		{unixAddr, "app", "appdb", -1, false, ""},
		{tcp("2001:db8::7"), "app", "appdb", 5, true, ""},
		{tcp("2001:db8::7"), "app", "reports", -1, false, ""},
		{tcp("2001:db9::7"), "app", "appdb", -1, false, ""},
	}
	for _, tc := range cases {
		c := Client{Addr: tc.addr, User: tc.user, Database: tc.db}
		require.Equal(t, tc.want, rs.Match(c), "%v %s %s", tc.addr, tc.user, tc.db)
		d := rs.Check(c)
		require.Equal(t, Decision{Allowed: tc.allowed, Rule: tc.want, Method: tc.method}, d, "%v %s %s", tc.addr, tc.user, tc.db)
	}
	require.Equal(t, Decision{Allowed: true, Rule: -1}, Rules(nil).Check(Client{Addr: tcp("1.2.3.4"), User: "x", Database: "y"}), "no rules: everyone may try")
}

// TestRulesTLS: a rule with tls required matches only TCP clients on TLS
// (pg_hba's hostssl), forbidden only TCP clients without it (hostnossl);
// neither matches a Unix-socket client, TLS or not.
func TestRulesTLS(t *testing.T) {
	rs := Rules{
		{Source: mustSource(t, "all"), Users: []string{"app"}, TLS: TLSRequired},            // 0
		{Source: mustSource(t, "all"), Users: []string{"ops"}, TLS: TLSForbidden},           // 1
		{Source: mustSource(t, "10.0.0.0/8"), Users: []string{"ops"}, Method: MethodReject}, // 2
		{Source: mustSource(t, "local"), Users: []string{"app"}, TLS: TLSRequired},          // 3: never matches
		{Source: mustSource(t, "local"), Method: "trust"},                                   // 4
	}
	cases := []struct {
		addr net.Addr
		tls  bool
		user string
		want int
	}{
		{tcp("10.0.0.5"), true, "app", 0},
		{tcp("10.0.0.5"), false, "app", -1},
		{tcp("10.0.0.5"), false, "ops", 1},
		{tcp("10.0.0.5"), true, "ops", 2},
		{tcp("11.0.0.5"), true, "ops", -1},
		{unixAddr, false, "app", 4},
		{unixAddr, true, "app", 4},
		{unixAddr, false, "ops", 4},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, rs.Match(Client{Addr: tc.addr, TLS: tc.tls, User: tc.user, Database: "appdb"}), "%v tls=%v %s", tc.addr, tc.tls, tc.user)
	}
}

// TestRefusal: the wording is PostgreSQL's, byte for byte (names are
// quoted without escaping, as PostgreSQL does).
func TestRefusal(t *testing.T) {
	require.Equal(t, `no pg_hba.conf entry for host "127.0.0.1", user "app", database "appdb", no encryption`,
		Refusal(Client{Addr: tcp("127.0.0.1"), User: "app", Database: "appdb"}, false))
	require.Equal(t, `no pg_hba.conf entry for host "::1", user "a\"b", database "x y", SSL encryption`,
		Refusal(Client{Addr: tcp("::1"), TLS: true, User: `a\"b`, Database: "x y"}, false))
	require.Equal(t, `pg_hba.conf rejects connection for host "[local]", user "app", database "appdb", no encryption`,
		Refusal(Client{Addr: unixAddr, User: "app", Database: "appdb"}, true))
	require.Equal(t, `pg_hba.conf rejects connection for host "10.1.2.3", user "app", database "appdb", no encryption`,
		Refusal(Client{Addr: tcp("::ffff:10.1.2.3"), User: "app", Database: "appdb"}, true))
}

func TestDescribe(t *testing.T) {
	require.Equal(t, "10.1.2.3", Describe(tcp("10.1.2.3")))
	require.Equal(t, "10.1.2.3", Describe(tcp("::ffff:10.1.2.3")))
	require.Equal(t, "2001:db8::1", Describe(tcp("2001:db8::1")))
	require.Equal(t, "the local Unix socket", Describe(unixAddr))
	require.Equal(t, "the local Unix socket", Describe(nil))
}

// FuzzParseSource checks that ParseSource never panics and that every
// accepted source is usable.
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"all", "local", "10.0.0.0/8", "10.0.0/33", "::1", "fe80::/10", "::ffff:1.2.3.4/128"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := ParseSource(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if src == (Source{}) {
			t.Fatalf("%q parsed to a Source that matches nothing", s)
		}
		src.Contains(tcp("10.0.0.1"))
		src.Contains(unixAddr)
	})
}
