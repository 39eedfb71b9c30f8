// Package access decides which clients may try to log in to sluice: the
// network allow-list (access rules, in the spirit of pg_hba.conf) and the
// per-address limit on failed logins.
//
// Rules are immutable once built and safe to share between goroutines; the
// Limiter is safe for concurrent use and owns no goroutines.
package access

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Keywords accepted by ParseSource besides addresses and CIDRs.
const (
	SourceAll   = "all"   // every TCP client and every Unix-socket client
	SourceLocal = "local" // Unix-socket clients only (pg_hba's "local")
)

// MethodReject is the rule method that refuses the client (pg_hba's reject).
const MethodReject = "reject"

// A rule's TLS requirement (pg_hba's hostssl and hostnossl). A rule with
// either one only matches TCP clients: like hostssl and hostnossl lines,
// it never matches a Unix-socket client, whose connection libpq never
// encrypts. The empty requirement matches both.
const (
	TLSRequired  = "required"  // TCP clients that use TLS (hostssl)
	TLSForbidden = "forbidden" // TCP clients that do not (hostnossl)
)

// Source is where a rule applies: every client, Unix-socket clients, or
// TCP clients whose address lies in a prefix. The zero Source matches
// nothing.
type Source struct {
	all, local bool
	prefix     netip.Prefix
}

// ParseSource parses a rule's cidr: "all", "local", a CIDR ("10.0.0.0/8",
// "fd00::/8") or a single address ("10.1.2.3", "::1"). IPv4-mapped IPv6
// forms are taken as IPv4.
func ParseSource(s string) (Source, error) {
	switch s {
	case SourceAll:
		return Source{all: true}, nil
	case SourceLocal:
		return Source{local: true}, nil
	case "":
		return Source{}, fmt.Errorf(`required: a CIDR such as "10.0.0.0/8", an address, "all" or "local"`)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Source{}, fmt.Errorf(`invalid CIDR %q: use a form such as "10.0.0.0/8" or "fd00::/8"`, s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return Source{prefix: p.Masked()}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return Source{}, fmt.Errorf(`invalid address %q: use an IP address, a CIDR such as "10.0.0.0/8", "all" or "local"`, s)
	}
	a = a.Unmap()
	return Source{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
}

// Contains reports whether the client at addr is in s. A nil addr or a
// "unix" address is a Unix-socket client; any other address must be a
// *net.TCPAddr (or parse as host:port).
func (s Source) Contains(addr net.Addr) bool {
	if s.all {
		return true
	}
	ip, local := clientIP(addr)
	if local {
		return s.local
	}
	return s.prefix.IsValid() && ip.IsValid() && s.prefix.Contains(ip)
}

// clientIP extracts the client's IP (unmapped, zone dropped) or reports a
// Unix-socket client.
func clientIP(addr net.Addr) (ip netip.Addr, local bool) {
	switch a := addr.(type) {
	case nil, *net.UnixAddr:
		return netip.Addr{}, true
	case *net.TCPAddr:
		if a == nil {
			return netip.Addr{}, false
		}
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap().WithZone(""), false
	}
	if addr.Network() == "unix" {
		return netip.Addr{}, true
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), false
}

// Refusal is the message PostgreSQL sends when pg_hba.conf has no line for
// a client (rejected false) or its line is reject (rejected true), so that
// a client of sluice reads what it would read from PostgreSQL:
//
//	no pg_hba.conf entry for host "10.1.2.3", user "app", database "appdb", no encryption
//
// The host is the client's IP, or "[local]" for the Unix socket; the last
// part says whether the connection uses TLS, as PostgreSQL built with SSL
// support says it.
func Refusal(c Client, rejected bool) string {
	host := "[local]"
	if _, local := clientIP(c.Addr); !local {
		host = Describe(c.Addr) // the IP, or "an unknown address"
	}
	enc := "no encryption"
	if c.TLS {
		enc = "SSL encryption"
	}
	what := "no pg_hba.conf entry for"
	if rejected {
		what = "pg_hba.conf rejects connection for"
	}
	// Quoted as PostgreSQL quotes them (no escaping), not with %q.
	return what + ` host "` + host + `", user "` + c.User + `", database "` + c.Database + `", ` + enc
}

// Describe names the client at addr for messages: its IP, or "the local
// Unix socket".
func Describe(addr net.Addr) string {
	ip, local := clientIP(addr)
	switch {
	case local:
		return "the local Unix socket"
	case ip.IsValid():
		return ip.String()
	}
	return "an unknown address"
}

// Rule is one access rule. Empty Users or Databases match any.
type Rule struct {
	Source    Source
	Users     []string
	Databases []string
	// TLS is "", TLSRequired or TLSForbidden.
	TLS string
	// Method overrides the user's authentication method when non-empty;
	// MethodReject refuses the client.
	Method string
}

// Rules is an ordered list of rules: the first that matches decides.
// An empty list allows every client (no allow-list configured).
type Rules []Rule

// Client is what the rules look at: where a client connects from, whether
// its connection is TLS, and the user and database it asks for.
type Client struct {
	Addr     net.Addr
	TLS      bool
	User     string
	Database string
}

// Match returns the index of the first rule that matches the client, or
// -1 when none does. With no rules at all it returns -1 as well; callers
// check len(rs) == 0 first (see Check).
func (rs Rules) Match(c Client) int {
	user, database := c.User, c.Database
	for i := range rs {
		r := &rs[i]
		if !r.Source.Contains(c.Addr) || !r.tlsMatches(c) {
			continue
		}
		if len(r.Users) > 0 && !slices.Contains(r.Users, user) {
			continue
		}
		if len(r.Databases) > 0 && !slices.Contains(r.Databases, database) {
			continue
		}
		return i
	}
	return -1
}

// tlsMatches applies the rule's TLS requirement to the client.
func (r *Rule) tlsMatches(c Client) bool {
	if r.TLS == "" {
		return true
	}
	if _, local := clientIP(c.Addr); local {
		return false
	}
	return c.TLS == (r.TLS == TLSRequired)
}

// Decision is the outcome of checking a client against the rules.
type Decision struct {
	Allowed bool
	Rule    int    // index of the matching rule, -1 if none (or no rules)
	Method  string // the rule's method override ("" = the user's own)
}

// Check applies the rules to a client: no rules allows it with no
// override; otherwise the first matching rule decides, and a client no
// rule matches is refused.
func (rs Rules) Check(c Client) Decision {
	if len(rs) == 0 {
		return Decision{Allowed: true, Rule: -1}
	}
	i := rs.Match(c)
	if i < 0 {
		return Decision{Rule: -1}
	}
	m := rs[i].Method
	if m == MethodReject {
		return Decision{Rule: i, Method: m}
	}
	return Decision{Allowed: true, Rule: i, Method: m}
}
