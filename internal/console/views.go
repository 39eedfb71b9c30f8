package console

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Views lists the SHOW views, for SHOW HELP and the docs.
var Views = []string{"POOLS", "CLIENTS", "SERVERS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "DATABASES", "USERS",
	"CONFIG", "LISTS", "VERSION", "STATE", "TOPOLOGY", "PINS", "PEERS", "FAILOVER", "HELP"}

// View renders SHOW name (upper case) from snap. state holds the
// process-wide SHOW STATE rows that are not per database (active).
func View(name string, snap *Snapshot) (*Result, error) {
	switch name {
	case "POOLS":
		return pools(snap), nil
	case "CLIENTS":
		return clients(snap), nil
	case "SERVERS":
		return servers(snap), nil
	case "STATS":
		return stats(snap), nil
	case "STATS_TOTALS":
		return statsTotals(snap, false), nil
	case "STATS_AVERAGES":
		return statsTotals(snap, true), nil
	case "DATABASES":
		return databases(snap), nil
	case "USERS":
		return users(snap), nil
	case "CONFIG":
		return config(snap), nil
	case "LISTS":
		return lists(snap), nil
	case "VERSION":
		return &Result{Columns: VersionColumns, Rows: [][]any{{snap.Version}}}, nil
	case "STATE":
		return state(snap), nil
	case "TOPOLOGY":
		return topology(snap), nil
	case "PINS":
		return pins(snap), nil
	case "PEERS":
		return peers(snap), nil
	case "FAILOVER":
		return failover(snap), nil
	case "HELP":
		return &Result{Notice: Help, Tag: "SHOW"}, nil
	}
	if v, ok := fakeParams[strings.ToLower(name)]; ok {
		return &Result{Columns: []Column{{Name: strings.ToLower(name), Type: TypeText}}, Rows: [][]any{{v}}}, nil
	}
	return nil, &Error{CodeInvalidCommand, fmt.Sprintf("invalid command 'SHOW %s', use SHOW HELP;", name)}
}

func micros(d time.Duration) int64 { return d.Microseconds() }

func pools(snap *Snapshot) *Result {
	r := &Result{Columns: PoolColumns}
	for _, p := range snap.Pools {
		r.Rows = append(r.Rows, []any{p.Database, p.User, p.ClActive, p.ClWaiting, 0, 0,
			p.SvActive, 0, 0, p.SvIdle, 0, 0, p.SvLogin,
			int(p.MaxWait / time.Second), int((p.MaxWait % time.Second) / time.Microsecond), p.PoolMode,
			p.MaxSize, p.MinSize, p.ClIdle, p.Paused, p.Disabled, p.ReadOnly, nullIfEmpty(p.Host)})
	}
	return r
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func clients(snap *Snapshot) *Result {
	r := &Result{Columns: ClientColumns}
	for _, c := range snap.Clients {
		var link any
		if c.ServerPID != 0 {
			link = fmt.Sprintf("server pid %d", c.ServerPID)
		}
		r.Rows = append(r.Rows, []any{"C", c.User, c.Database, c.State, c.Addr, c.Port, c.LocalAddr, c.LocalPort,
			c.ConnectTime, c.ConnectTime, 0, 0, 0, fmt.Sprintf("client %d", c.ID), link, 0,
			c.TLS, c.AppName, 0, c.ID, c.PoolMode, c.ReadOnly, nullIfEmpty(strings.Join(c.Pins, ","))})
	}
	return r
}

func servers(snap *Snapshot) *Result {
	r := &Result{Columns: ServerColumns}
	for _, s := range snap.Servers {
		var link, client any
		if s.ClientID != 0 {
			link, client = fmt.Sprintf("client %d", s.ClientID), s.ClientID
		}
		r.Rows = append(r.Rows, []any{"S", s.User, s.Database, s.State, s.Addr, s.Port, s.LocalAddr, s.LocalPort,
			s.ConnectTime, s.ConnectTime, 0, 0, s.CloseNeeded, fmt.Sprintf("server pid %d", s.PID), link, s.PID,
			s.TLS, s.AppName, 0, uint64(s.PID), s.Host, client})
	}
	return r
}

// per divides for an average; 0 when there is nothing to divide by.
func per(total int64, n uint64) int64 {
	if n == 0 {
		return 0
	}
	return total / int64(n)
}

// rate is total per second of uptime (PgBouncer averages over its
// stats_period; sluice over the time since it started).
func rate(total uint64, snap *Snapshot) int64 {
	secs := int64(snap.Taken.Sub(snap.Started) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return int64(total) / secs
}

func stats(snap *Snapshot) *Result {
	r := &Result{Columns: StatsColumns}
	for _, s := range snap.Stats {
		r.Rows = append(r.Rows, []any{s.Database, s.XactCount, s.QueryCount, s.Received, s.Sent,
			micros(s.XactTime), micros(s.QueryTime), micros(s.WaitTime),
			rate(s.XactCount, snap), rate(s.QueryCount, snap), rate(s.Received, snap), rate(s.Sent, snap),
			per(micros(s.XactTime), s.XactCount), per(micros(s.QueryTime), s.QueryCount), per(micros(s.WaitTime), s.Waits)})
	}
	return r
}

func statsTotals(snap *Snapshot, averages bool) *Result {
	r := &Result{Columns: StatsTotalsColumns}
	for _, s := range snap.Stats {
		if averages {
			r.Rows = append(r.Rows, []any{s.Database, rate(s.XactCount, snap), rate(s.QueryCount, snap), rate(s.Received, snap), rate(s.Sent, snap),
				per(micros(s.XactTime), s.XactCount), per(micros(s.QueryTime), s.QueryCount), per(micros(s.WaitTime), s.Waits)})
			continue
		}
		r.Rows = append(r.Rows, []any{s.Database, s.XactCount, s.QueryCount, s.Received, s.Sent,
			micros(s.XactTime), micros(s.QueryTime), micros(s.WaitTime)})
	}
	return r
}

func databases(snap *Snapshot) *Result {
	r := &Result{Columns: DatabaseColumns}
	for _, d := range snap.Databases {
		var port any
		if d.Port != 0 {
			port = d.Port
		}
		r.Rows = append(r.Rows, []any{d.Name, nullIfEmpty(d.Host), port, d.DBName, nil, d.PoolSize, d.MinPoolSize,
			0, d.PoolMode, d.MaxConns, d.CurrentConns, d.Paused, d.Disabled, d.Pausing, strings.Join(d.Hosts, ","), d.Clients})
	}
	return r
}

func users(snap *Snapshot) *Result {
	r := &Result{Columns: UserColumns}
	for _, u := range snap.Users {
		r.Rows = append(r.Rows, []any{u.Name, nil, u.AuthMethod, u.Admin, u.StatsOnly})
	}
	return r
}

func config(snap *Snapshot) *Result {
	r := &Result{Columns: ConfigColumns}
	for _, s := range snap.Config {
		ch := "no"
		if s.Changeable {
			ch = "yes"
		}
		r.Rows = append(r.Rows, []any{s.Key, s.Value, s.Default, ch})
	}
	return r
}

// lists counts what SHOW LISTS counts; sluice has no slab caches or DNS
// cache, so free_* and dns_* are 0.
func lists(snap *Snapshot) *Result {
	used := 0
	for _, c := range snap.Clients {
		if c.State != "login" {
			used++
		}
	}
	r := &Result{Columns: ListColumns}
	for _, l := range []struct {
		name string
		n    int
	}{{"databases", len(snap.Databases)}, {"users", len(snap.Users)}, {"pools", len(snap.Pools)},
		{"free_clients", 0}, {"used_clients", used}, {"login_clients", snap.LoginClients},
		{"free_servers", 0}, {"used_servers", len(snap.Servers)},
		{"dns_names", 0}, {"dns_zones", 0}, {"dns_queries", 0}, {"dns_pending", 0}} {
		r.Rows = append(r.Rows, []any{l.name, l.n})
	}
	return r
}

// state is PgBouncer's three rows, then one per database:
// "running", "pausing", "paused", with ", disabled" when DISABLEd.
func state(snap *Snapshot) *Result {
	allPaused := len(snap.Databases) > 0
	for _, d := range snap.Databases {
		allPaused = allPaused && d.Paused
	}
	yn := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	r := &Result{Columns: StateColumns, Rows: [][]any{{"active", "yes"}, {"paused", yn(allPaused)}, {"suspended", "no"}}}
	dbs := append([]Database(nil), snap.Databases...)
	sort.Slice(dbs, func(i, j int) bool { return dbs[i].Name < dbs[j].Name })
	for _, d := range dbs {
		v := "running"
		switch {
		case d.Paused:
			v = "paused"
		case d.Pausing:
			v = "pausing"
		}
		if d.Disabled {
			v += ", disabled"
		}
		r.Rows = append(r.Rows, []any{"database " + d.Name, v})
	}
	return r
}

func topology(snap *Snapshot) *Result {
	r := &Result{Columns: TopologyColumns}
	for _, h := range snap.Hosts {
		var lag, timeline any
		if h.LagKnown {
			lag = h.Lag.Milliseconds()
		}
		if h.Timeline != 0 {
			timeline = h.Timeline
		}
		r.Rows = append(r.Rows, []any{h.Database, h.Host, h.Role, h.Primary, timeline, lag, h.LagBytes,
			h.Reachable, h.Fenced, h.LastSeen, h.Failovers, nullIfEmpty(h.Error)})
	}
	return r
}

func pins(snap *Snapshot) *Result {
	r := &Result{Columns: PinColumns}
	for _, p := range snap.Pins {
		r.Rows = append(r.Rows, []any{p.ClientID, p.User, p.Database, p.Addr, strings.Join(p.Reasons, ","), p.Since,
			snap.Taken.Sub(p.Since).Milliseconds(), p.Port, p.ServerPID, p.Statement, p.Release})
	}
	return r
}

// peers lists the fleet: PgBouncer's columns (host and port are the
// advertised address's; pool_size, PgBouncer's pool of connections to a
// peer, is 0), then sluice's.
func peers(snap *Snapshot) *Result {
	r := &Result{Columns: PeerColumns}
	for _, p := range snap.Peers {
		host, port := p.Address, 0
		if h, ps, err := net.SplitHostPort(p.Address); err == nil {
			host = h
			port, _ = strconv.Atoi(ps)
		}
		r.Rows = append(r.Rows, []any{p.PeerID, host, port, 0, p.InstanceID, p.Address, p.Version, p.Started,
			strings.Join(p.Databases, ","), p.ConfigMatches, strings.Join(p.ConfigDiffers, ","), p.Self})
	}
	return r
}

// failover lists, per database whose failover the fleet decides, the
// decision in etcd and the election (NULL where there is none yet).
func failover(snap *Snapshot) *Result {
	r := &Result{Columns: FailoverColumns}
	for _, f := range snap.Failover {
		r.Rows = append(r.Rows, []any{f.Database, nullIfEmpty(f.Primary), f.Timeline, f.Epoch, f.Done,
			nullIfEmpty(f.DecidedBy), f.DecidedAt, nullIfEmpty(f.Leader), f.Leading, f.EtcdUp, f.CanPromote, nullIfEmpty(f.WhyNot)})
	}
	return r
}
