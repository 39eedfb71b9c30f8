package proxy

import (
	"crypto/tls"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
)

// Snapshot copies what the admin console and the HTTP API show out of
// the running proxy: pools, clients, server connections, databases,
// users, counters, topology and pins. It takes the server's lock once to
// list pools and sessions, then each session's own lock briefly; nothing
// on a client's path waits for it beyond that. The result belongs to the
// caller.
func (s *Server) Snapshot() *console.Snapshot {
	now := time.Now()
	st := s.state.Load()
	cfg := st.cfg
	op := s.operator()
	snap := &console.Snapshot{Taken: now, Started: s.started, Version: op.Version, Peers: []console.Peer{},
		Failover: []console.Failover{}}
	if op.Peers != nil {
		snap.Peers = op.Peers()
	}
	if op.Failover != nil {
		snap.Failover = op.Failover()
	}

	s.mu.Lock()
	entries := make([]*poolEntry, 0, len(s.pools))
	for _, e := range s.pools {
		entries = append(entries, e)
	}
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	entries = append(entries, s.readPools()...)

	homes := newServerHomes(entries)
	type poolUse struct{ active, idle, waiting int }
	use := map[poolKey]*poolUse{}
	dbClients := map[string]int{}
	for _, ss := range sessions {
		c, conn, ok := ss.view(now)
		if !ok {
			snap.LoginClients++
			continue
		}
		k := poolKey{c.Database, c.User}
		if use[k] == nil {
			use[k] = &poolUse{}
		}
		switch c.State {
		case "active":
			use[k].active++
		case "idle":
			use[k].idle++
		case "waiting":
			use[k].waiting++
		}
		dbClients[c.Database]++
		snap.Clients = append(snap.Clients, c)
		if rec := ss.pins.Load(); rec != nil {
			snap.Pins = append(snap.Pins, pinView(c, rec))
		}
		if conn != nil {
			sv := serverView(conn, c.Database, c.User, "active")
			sv.ClientID = c.ID
			sv.CloseNeeded = homes.retired(k, conn)
			snap.Servers = append(snap.Servers, sv)
		}
	}
	sort.Slice(snap.Clients, func(i, j int) bool { return snap.Clients[i].ID < snap.Clients[j].ID })
	sort.Slice(snap.Pins, func(i, j int) bool { return snap.Pins[i].ClientID < snap.Pins[j].ClientID })

	stats := map[string]*console.Stats{}
	conns := map[string]int{}
	for _, e := range entries {
		db := e.db.Load()
		ps := e.pool.Stats()
		pc := e.pool.Config()
		p := console.Pool{Database: e.key.database, User: e.key.user, ClWaiting: ps.Waiting, SvActive: ps.Busy, SvIdle: ps.Idle,
			SvLogin: ps.Dialing, MaxSize: pc.MaxSize, MinSize: pc.MinSize, Dials: ps.Dials, Timeouts: ps.Timeouts}
		if since := e.pool.OldestWait(); !since.IsZero() && now.After(since) {
			p.MaxWait = now.Sub(since)
		}
		if db != nil {
			p.PoolMode = db.PoolMode.String()
		}
		if e.ro != nil {
			p.ReadOnly, p.Host = true, e.ro.name
		} else if u := use[e.key]; u != nil {
			p.ClActive, p.ClIdle = u.active, u.idle
		}
		ds := s.State(e.key.database)
		p.Paused, p.Disabled = ds.Paused, ds.Disabled
		snap.Pools = append(snap.Pools, p)
		conns[e.key.database] += ps.Busy + ps.Idle + ps.Dialing
		e.pool.EachIdle(func(conn *backend.Conn, _ time.Time) {
			snap.Servers = append(snap.Servers, serverView(conn, e.key.database, e.key.user, "idle"))
		})
		if sv, ok := listenerView(e); ok {
			snap.Servers = append(snap.Servers, sv)
			conns[e.key.database]++ // outside max_size, inside max_db_connections
		}
		sum := stats[e.key.database]
		if sum == nil {
			sum = &console.Stats{Database: e.key.database}
			stats[e.key.database] = sum
		}
		t := e.stats.Totals()
		sum.Waits += t.Waits
		sum.WaitTime += t.WaitTime
		sum.XactCount += t.Transactions
		sum.QueryCount += t.Queries
		sum.XactTime += t.XactTime
		sum.QueryTime += t.QueryTime
		c := &e.counters
		sum.Received += c.received.Load()
		sum.Sent += c.sent.Load()
	}
	sort.Slice(snap.Pools, func(i, j int) bool {
		a, b := snap.Pools[i], snap.Pools[j]
		if a.Database != b.Database {
			return a.Database < b.Database
		}
		if a.User != b.User {
			return a.User < b.User
		}
		return a.Host < b.Host
	})
	sort.SliceStable(snap.Servers, func(i, j int) bool {
		a, b := snap.Servers[i], snap.Servers[j]
		if a.Database != b.Database {
			return a.Database < b.Database
		}
		return a.PID < b.PID
	})

	hosts, primaries := s.topologyView()
	snap.Hosts = hosts
	names := make([]string, 0, len(cfg.Databases))
	for n := range cfg.Databases {
		names = append(names, n)
	}
	sort.Strings(names)
	limits := s.gateLimits()
	for _, n := range names {
		db := cfg.Databases[n]
		ds := s.State(n)
		d := console.Database{Name: n, DBName: db.DBName, PoolSize: db.Pool.MaxSize, MinPoolSize: db.Pool.MinSize,
			PoolMode: db.PoolMode.String(), MaxConns: limits[n], CurrentConns: conns[n], Paused: ds.Paused, Pausing: ds.Pausing, Disabled: ds.Disabled,
			Hosts: db.Hosts, Clients: dbClients[n]}
		host := db.PrimaryHost().Display
		if len(db.Hosts) > 1 {
			host = primaries[n]
		}
		d.Host, d.Port = splitHostPort(host)
		snap.Databases = append(snap.Databases, d)
		if sum := stats[n]; sum != nil {
			snap.Stats = append(snap.Stats, *sum)
		} else {
			snap.Stats = append(snap.Stats, console.Stats{Database: n})
		}
	}
	for _, u := range cfg.Users {
		role := cfg.Admin.ConsoleRole(u.Name)
		snap.Users = append(snap.Users, console.User{Name: u.Name, AuthMethod: u.EffectiveAuthMethod(cfg.Auth.Method).String(),
			Admin: role == "admin", StatsOnly: role == "stats"})
	}
	snap.Config = configView(cfg)
	nonNil(&snap.Pools)
	nonNil(&snap.Clients)
	nonNil(&snap.Servers)
	nonNil(&snap.Hosts)
	nonNil(&snap.Pins)
	return snap
}

// nonNil makes an empty list an empty one, not nil: the API shows [] then.
func nonNil[T any](s *[]T) {
	if *s == nil {
		*s = []T{}
	}
}

// view is the session as SHOW CLIENTS shows it, with its server
// connection (nil: none); ok is false while it has not logged in.
func (ss *session) view(now time.Time) (c console.Client, conn *backend.Conn, ok bool) {
	ss.mu.Lock()
	info, conn, tx := ss.info, ss.server, ss.tx != nil
	ss.mu.Unlock()
	if !info.loggedIn {
		return c, nil, false
	}
	c = console.Client{ID: ss.id, User: info.user, Database: info.database, ConnectTime: ss.start,
		AppName: info.appName, PoolMode: info.poolMode.String(), ReadOnly: ss.readOnly}
	if info.console {
		c.PoolMode = "console"
	}
	switch {
	case info.console || conn != nil:
		c.State = "active"
	case tx && ss.borrowing.Load():
		c.State = "waiting" // transaction mode: between attach and a server connection
	case tx:
		c.State = "idle"
	default:
		c.State = "waiting" // session mode, logged in, no server connection yet
	}
	if conn != nil {
		c.ServerPID = conn.PID
	}
	if rec := ss.pins.Load(); rec != nil {
		c.Pins = rec.reasons
	}
	c.Addr, c.Port = addrPort(ss.client.RemoteAddr())
	c.LocalAddr, c.LocalPort = addrPort(ss.client.LocalAddr())
	if tc, isTLS := ss.client.(*tls.Conn); isTLS {
		c.TLS = tls.VersionName(tc.ConnectionState().Version)
	}
	return c, conn, true
}

// pinView is SHOW PINS' row of a pinned client c: how to end each
// reason, in order.
func pinView(c console.Client, rec *pinRecord) console.Pin {
	release := make([]string, len(rec.reasons))
	for i, r := range rec.reasons {
		release[i] = r + ": " + txcore.PinRelease(r)
	}
	return console.Pin{ClientID: c.ID, User: c.User, Database: c.Database, Addr: c.Addr, Port: c.Port,
		Reasons: rec.reasons, Since: rec.since, ServerPID: rec.serverPID, Statement: rec.statement,
		Release: strings.Join(release, "; ")}
}

// addrPort splits a socket address; a Unix socket is its path and port 0.
func addrPort(a net.Addr) (string, int) {
	if a == nil {
		return "", 0
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.Port
	}
	if a.Network() == "unix" {
		if a.String() == "" || a.String() == "@" {
			return "unix", 0
		}
		return a.String(), 0
	}
	return splitHostPort(a.String())
}

func splitHostPort(hp string) (string, int) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return hp, 0
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

// topologyView lists the monitored hosts of databases with several, and
// each such database's current primary ("" when it has none).
func (s *Server) topologyView() ([]console.Host, map[string]string) {
	s.mu.Lock()
	topos := make([]*dbTopology, 0, len(s.topos))
	for _, t := range s.topos {
		topos = append(topos, t)
	}
	s.mu.Unlock()
	sort.Slice(topos, func(i, j int) bool { return topos[i].name < topos[j].name })
	var out []console.Host
	primaries := map[string]string{}
	for _, t := range topos {
		snap := t.mon.Snapshot()
		primaries[t.name] = snap.Primary
		for _, h := range snap.Hosts {
			ch := console.Host{Database: t.name, Host: h.Name, Role: h.Role.String(), Primary: h.Name == snap.Primary,
				Timeline: h.Timeline, Lag: h.Lag, LagKnown: h.LagKnown, LagBytes: h.LagBytes, Reachable: h.Reachable,
				Fenced: h.Role.String() == "fenced", LastSeen: h.LastSeen, Failovers: snap.Failovers}
			if h.Err != nil {
				ch.Error = h.Err.Error()
			}
			out = append(out, ch)
		}
	}
	return out, primaries
}
