package proxy

import (
	"context"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/console"
)

// Config is the configuration in force (shared, read-only).
func (s *Server) Config() *config.Config { return s.state.Load().cfg }

// readinessDialTimeout bounds the reachability check of a single-host
// database's server in Readiness.
const readinessDialTimeout = time.Second

// Readiness reports, per configured database, whether sluice can serve
// it now, for /readyz. A database with several hosts is ready when its
// monitor sees a writable primary, or, without one, when
// listen.read_only_address is set and a standby is reachable (its
// read-only clients are still served: the "read-only fallback"). A
// database with one host is ready when a TCP (or Unix socket)
// connection to it succeeds within a second; no login is made, so the
// check costs the server nothing but an accept (PostgreSQL logs nothing
// for a connection that sends no startup packet). Checks run in
// parallel; ctx bounds them.
func (s *Server) Readiness(ctx context.Context) []console.Readiness {
	cfg := s.Config()
	hosts, primaries := s.topologyView()
	names := make([]string, 0, len(cfg.Databases))
	for n := range cfg.Databases {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]console.Readiness, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		db := cfg.Databases[n]
		out[i].Database = n
		if len(db.Hosts) > 1 {
			p, monitored := primaries[n]
			switch {
			case !monitored:
				out[i].Reason = "its servers are not monitored yet"
			case p != "":
				out[i].Ready, out[i].Primary = true, p
			case cfg.Listen.ReadOnlyAddress != "" && standbyReachable(hosts, n):
				out[i].Ready, out[i].Reason = true, "read-only fallback: no writable primary, standbys serve listen.read_only_address"
			default:
				out[i].Reason = "no writable primary (no reachable server is a primary on the newest timeline)"
			}
			continue
		}
		h := db.PrimaryHost()
		out[i].Primary = h.Display
		wg.Add(1)
		go func(r *console.Readiness) {
			defer wg.Done()
			d := net.Dialer{Timeout: readinessDialTimeout}
			c, err := d.DialContext(ctx, h.Network, h.Address)
			if err != nil {
				r.Reason = "server " + h.Display + " is not reachable: " + err.Error()
				return
			}
			c.Close()
			r.Ready = true
		}(&out[i])
	}
	wg.Wait()
	return out
}

func standbyReachable(hosts []console.Host, db string) bool {
	for _, h := range hosts {
		if h.Database == db && h.Role == "standby" && h.Reachable {
			return true
		}
	}
	return false
}
