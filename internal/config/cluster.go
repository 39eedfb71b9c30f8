package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Cluster makes this sluice one member of a fleet of instances
// coordinated through etcd (internal/cluster): membership, peer numbers
// and the fleet secret. It is off unless cluster.etcd.endpoints is set;
// then nothing about a single sluice changes and no etcd is needed.
//
// Every cluster key needs a restart: RELOAD keeps the running ones and
// logs that they changed (an instance that changed its identity or its
// etcd on the fly would leave a stale member behind).
type Cluster struct {
	Etcd Etcd `yaml:"etcd"`
	// InstanceID names this instance in the fleet; it must be unique.
	// Default: the host name, ":", and the port of listen.address (the
	// port bound, when it is 0). See InstanceIDFor.
	InstanceID string `yaml:"instance_id"`
	// Prefix is where the fleet's keys live in etcd: <prefix>members/,
	// <prefix>peer_ids/, <prefix>secret. Default "/sluice/".
	Prefix string `yaml:"prefix"`
	// AdvertiseAddress is how peers reach this instance's PostgreSQL
	// listener (host:port). Default: listen.address when its host is not
	// a wildcard, else the host name and its port. See AdvertiseFor.
	AdvertiseAddress string `yaml:"advertise_address"`
	// LeaseTTL is how long etcd keeps this instance's registration after
	// it stops renewing it (crash, partition). Default 10s.
	LeaseTTL Duration `yaml:"lease_ttl"`
}

// Etcd says how to reach etcd.
type Etcd struct {
	// Endpoints are etcd's client addresses ("host:port",
	// "http://host:port" or "https://host:port").
	Endpoints []string `yaml:"endpoints"`
	// CAFile verifies etcd's certificate (TLS to etcd is on when it, or
	// the client certificate, is set, or an endpoint is https://).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"` // client certificate, with key_file
	KeyFile  string `yaml:"key_file"`
	// Username and Password authenticate to etcd (its RBAC); ${ENV} is
	// expanded in Password; PasswordFile holds it instead.
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	DialTimeout  Duration `yaml:"dial_timeout"` // default 5s; bounds each connection attempt and request
}

// Cluster defaults.
const (
	DefaultClusterPrefix   = "/sluice/"
	DefaultClusterLeaseTTL = 10 * time.Second
	DefaultEtcdDialTimeout = 5 * time.Second
	// MinClusterLeaseTTL is etcd's own minimum lease (it raises shorter
	// ones to about 2 s with its default election timeout).
	MinClusterLeaseTTL = 2 * time.Second
	maxClusterLeaseTTL = time.Hour
	maxInstanceID      = 128
)

// Enabled reports whether this instance is part of a fleet.
func (c *Cluster) Enabled() bool { return len(c.Etcd.Endpoints) > 0 }

// InstanceIDFor is the instance id: cluster.instance_id, or hostname
// and the port of listenAddr (the address actually bound).
func (c *Cluster) InstanceIDFor(hostname, listenAddr string) string {
	if c.InstanceID != "" {
		return c.InstanceID
	}
	_, port, _ := net.SplitHostPort(listenAddr)
	return hostname + ":" + port
}

// AdvertiseFor is the address peers reach this instance at:
// cluster.advertise_address, or listenAddr (the address actually bound)
// when its host is not a wildcard, else hostname and its port.
func (c *Cluster) AdvertiseFor(hostname, listenAddr string) string {
	if c.AdvertiseAddress != "" {
		return c.AdvertiseAddress
	}
	host, port, _ := net.SplitHostPort(listenAddr)
	if anyInterface(host) {
		return net.JoinHostPort(hostname, port)
	}
	return listenAddr
}

// validateCluster checks the cluster section. Keys other than the
// endpoints without endpoints are a mistake (a fleet was meant), so they
// are refused rather than ignored.
func validateCluster(cfg *Config, c *collector, src sources) {
	cl := &cfg.Cluster
	if !cl.Enabled() {
		if _, set := c.lines["cluster"]; set && !c.bad["cluster"] && !c.bad["cluster.etcd.endpoints"] {
			c.invalid("cluster.etcd.endpoints", "required when the cluster section is set (etcd's client addresses, such as [\"10.0.0.5:2379\"]); remove the section to run a single sluice")
		}
		return
	}
	for i, e := range cl.Etcd.Endpoints {
		if err := checkEtcdEndpoint(e); err != nil {
			c.invalid(index("cluster.etcd.endpoints", i), "%s", err)
		}
	}
	e := &cl.Etcd
	var plain, secure bool
	for _, ep := range e.Endpoints {
		plain = plain || strings.HasPrefix(ep, "http://")
		secure = secure || strings.HasPrefix(ep, "https://")
	}
	switch {
	case plain && secure:
		c.invalid("cluster.etcd.endpoints", "mixes http:// and https:// endpoints: the etcd client would use one or the other for all of them")
	case plain && (e.CAFile != "" || e.CertFile != ""):
		// The etcd client drops TLS for http:// endpoints whatever its
		// TLS settings, and would send the password in clear.
		c.invalid("cluster.etcd.endpoints", "http:// endpoints never use TLS: write them as https://host:port (or host:port) when cluster.etcd.ca_file or cert_file is set")
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		c.invalid("cluster.etcd.cert_file", "set cluster.etcd.cert_file and cluster.etcd.key_file together")
	}
	if e.PasswordFile != "" {
		if e.Password != "" {
			c.invalid("cluster.etcd.password_file", "set either password or password_file, not both")
		} else if v, err := readSecret(e.PasswordFile, src.readFile); err != nil {
			c.invalid("cluster.etcd.password_file", "%s", err)
		} else {
			e.Password = v
		}
	} else if v, err := expandEnv(e.Password, src.env); err != nil {
		c.invalid("cluster.etcd.password", "%s", err)
	} else {
		e.Password = v
	}
	if (e.Username == "") != (e.Password == "" && e.PasswordFile == "") {
		c.invalid("cluster.etcd.username", "set cluster.etcd.username together with cluster.etcd.password (or password_file)")
	}
	if e.DialTimeout <= 0 {
		c.invalid("cluster.etcd.dial_timeout", "must be > 0, got %s", e.DialTimeout)
	}
	if err := checkInstanceID(cl.InstanceID); err != nil {
		c.invalid("cluster.instance_id", "%s", err)
	}
	if !strings.HasPrefix(cl.Prefix, "/") || !strings.HasSuffix(cl.Prefix, "/") || strings.Contains(cl.Prefix, "//") {
		c.invalid("cluster.prefix", "must start and end with \"/\" (such as /sluice/ or /sluice/prod/), got %q", cl.Prefix)
	}
	if a := cl.AdvertiseAddress; a != "" {
		host, port, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			c.invalid("cluster.advertise_address", "%q is not a host:port address such as 10.0.0.7:6432", a)
		case anyInterface(host):
			c.invalid("cluster.advertise_address", "%q is a wildcard: peers need an address they can connect to", a)
		default:
			if err := checkPort(port, false); err != nil {
				c.invalid("cluster.advertise_address", "%s", err)
			}
		}
	}
	if cl.LeaseTTL < Duration(MinClusterLeaseTTL) || cl.LeaseTTL > Duration(maxClusterLeaseTTL) {
		c.invalid("cluster.lease_ttl", "must be between %s and %s, got %s", MinClusterLeaseTTL, maxClusterLeaseTTL, cl.LeaseTTL)
	}
}

// checkInstanceID allows what is safe as the last element of an etcd key
// and in a log line: printable, no "/", no spaces, at most 128 bytes.
// "" is allowed (the default is computed at start).
func checkInstanceID(id string) error {
	if len(id) > maxInstanceID {
		return fmt.Errorf("longer than %d bytes", maxInstanceID)
	}
	for _, r := range id {
		if r == '/' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("%q may not contain %q (use letters, digits and . _ - :)", id, r)
		}
	}
	return nil
}

func checkEtcdEndpoint(e string) error {
	hostPort := e
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("%q is not an etcd endpoint such as 10.0.0.5:2379 or https://etcd1:2379", e)
		}
		hostPort = u.Host
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not an etcd endpoint such as 10.0.0.5:2379 or https://etcd1:2379", e)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is out of range 1..65535", e, port)
	}
	return nil
}

// TLS reports whether sluice talks TLS to etcd.
func (e *Etcd) TLS() bool {
	if e.CAFile != "" || e.CertFile != "" {
		return true
	}
	for _, ep := range e.Endpoints {
		if strings.HasPrefix(ep, "https://") {
			return true
		}
	}
	return false
}
