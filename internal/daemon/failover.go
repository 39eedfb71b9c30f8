package daemon

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/internal/cluster"
	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// startPromoter puts the failover of databases with auto_promote under
// the fleet's elections (one promoter per database, decisions in etcd).
// Its metrics go on the proxy's registry. A test's crash hook (see
// CrashAfterIntentEnv) is armed before any election starts.
func startPromoter(m *cluster.Member, srv *proxy.Server, log *slog.Logger) (*cluster.Promoter, error) {
	p := cluster.NewPromoter(m)
	if err := armCrashAfterIntent(p, log); err != nil {
		return p, err
	}
	srv.Metrics().Registry.MustRegister(p.Collectors()...)
	srv.SetFailoverFleet(func(db string) topology.Fleet { return electionFleet{p.Database(db)} })
	return p, nil
}

// electionFleet adapts a cluster.Election to topology.Fleet (the two
// packages do not know each other).
type electionFleet struct{ e *cluster.Election }

func (f electionFleet) Decision() (topology.Decision, bool) {
	d, ok := f.e.Decision()
	return topology.Decision{Epoch: d.Epoch, Primary: d.Primary, Timeline: d.Timeline, Done: d.Done, Leader: d.Leader, At: d.At}, ok
}

func (f electionFleet) Changed() <-chan struct{}  { return f.e.Changed() }
func (f electionFleet) Leading() bool             { return f.e.Leading() }
func (f electionFleet) Available() (bool, string) { return f.e.Available() }

func (f electionFleet) Write(ctx context.Context, d topology.Decision) error {
	return f.e.Write(ctx, cluster.Decision{Epoch: d.Epoch, Primary: d.Primary, Timeline: d.Timeline, Done: d.Done})
}

// failoverBlocked says, for /readyz, which databases cannot fail over
// now because etcd is unreachable ("" when none).
func failoverBlocked(p *cluster.Promoter) string {
	if p == nil {
		return ""
	}
	b := p.Blocked()
	if len(b) == 0 {
		return ""
	}
	dbs := make([]string, 0, len(b))
	for db := range b {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	return "failover is disabled while etcd is unreachable (no standby is promoted; writes keep going to the known primary) for " +
		strings.Join(dbs, ", ") + ": " + b[dbs[0]]
}

// failoverView converts the promoter's elections for SHOW FAILOVER and
// /api/failover.
func failoverView(p *cluster.Promoter) []console.Failover {
	st := p.Status()
	out := make([]console.Failover, len(st))
	for i, e := range st {
		f := console.Failover{Database: e.Database, Leader: e.Holder, Leading: e.Leading, EtcdUp: e.Available}
		if e.Have {
			f.Primary, f.Timeline, f.Epoch, f.Done = e.Decision.Primary, e.Decision.Timeline, e.Decision.Epoch, e.Decision.Done
			f.DecidedBy, f.DecidedAt = e.Decision.Leader, e.Decision.At
		}
		switch {
		case !e.Available:
			f.WhyNot = "failover is disabled while etcd is unreachable: " + e.Why
		case !e.Leading && e.Holder != "":
			f.WhyNot = "another instance leads failover for this database: " + e.Holder
		case !e.Leading:
			f.WhyNot = "this instance does not lead failover for this database"
		default:
			f.CanPromote = true
		}
		out[i] = f
	}
	return out
}
