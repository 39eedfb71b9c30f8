package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Host is a parsed entry of databases.<name>.hosts.
type Host struct {
	Network string // "tcp" or "unix"
	Address string // dialable: "127.0.0.1:5432" or "/dir/.s.PGSQL.5432"
	Display string // as written in the file, for logs and errors
}

// ParseHost parses one hosts entry. Two forms are accepted, both with a
// mandatory port:
//
//	host:port       TCP; host is a name, an IPv4 address or a [bracketed] IPv6 address
//	/dir:port       Unix socket /dir/.s.PGSQL.port, as libpq's host=/dir port=port
//
// A leading '/' selects the Unix form; the port is after the last ':'.
func ParseHost(s string) (Host, error) {
	if s == "" {
		return Host{}, errors.New("empty host")
	}
	if strings.HasPrefix(s, "/") {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return Host{}, fmt.Errorf("unix socket host %q needs a port: write \"%s:5432\"", s, s)
		}
		dir, port := strings.TrimRight(s[:i], "/"), s[i+1:]
		if err := checkPort(port, false); err != nil {
			return Host{}, fmt.Errorf("host %q: %w", s, err)
		}
		if dir == "" {
			dir = "/"
		}
		if strings.ContainsRune(dir, 0) {
			return Host{}, fmt.Errorf("host %q: directory contains a NUL byte", s)
		}
		return Host{Network: "unix", Address: strings.TrimSuffix(dir, "/") + "/.s.PGSQL." + port, Display: s}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if !strings.Contains(s, ":") {
			return Host{}, fmt.Errorf("host %q needs a port: write \"%s:5432\"", s, s)
		}
		return Host{}, fmt.Errorf("host %q is not host:port (IPv6 addresses go in brackets: [::1]:5432)", s)
	}
	if host == "" {
		return Host{}, fmt.Errorf("host %q has no host name before the port", s)
	}
	if strings.ContainsAny(host, " \t/\x00") {
		return Host{}, fmt.Errorf("host %q: invalid host name %q", s, host)
	}
	if err := checkPort(port, false); err != nil {
		return Host{}, fmt.Errorf("host %q: %w", s, err)
	}
	return Host{Network: "tcp", Address: net.JoinHostPort(host, port), Display: s}, nil
}

// checkPort accepts a decimal port 1..65535 (0 too when zeroOK).
func checkPort(port string, zeroOK bool) error {
	n, err := strconv.Atoi(port)
	if err != nil || strings.TrimLeft(port, "0123456789") != "" || port == "" {
		return fmt.Errorf("port %q is not a number", port)
	}
	if n > 65535 || (n == 0 && !zeroOK) {
		lo := 1
		if zeroOK {
			lo = 0
		}
		return fmt.Errorf("port %d is out of range %d..65535", n, lo)
	}
	return nil
}

// checkListenAddr validates a "host:port" listen address; the host may be
// empty (all interfaces) and the port may be 0 (picked by the kernel).
func checkListenAddr(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not a host:port address such as 127.0.0.1:6432", s)
	}
	return checkPort(port, true)
}

// SocketPath is the Unix socket sluice listens on, "" when socket_dir is
// unset: <socket_dir>/.s.PGSQL.<port of listen.address>, the name libpq
// looks for, so `psql -h <socket_dir> -p <port>` finds it.
func (l Listen) SocketPath() string {
	if l.SocketDir == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(l.Address)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(l.SocketDir, "/") + "/.s.PGSQL." + port
}
