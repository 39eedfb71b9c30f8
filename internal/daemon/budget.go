package daemon

import (
	"context"
	"log/slog"

	"github.com/sluice-proxy/sluice/internal/cluster"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
)

// startBudget divides the databases' max_db_connections among the
// fleet (nil when not in a fleet or no database has one): each
// database's gate in the proxy gets this instance's acknowledged share
// as its limit. Which databases have a budget is read at start (setting
// or removing one needs a restart); a changed value applies at reload
// (reloadBudget). successor: this process was started by an upgrade
// (its predecessor may still hold connections under the instance's
// share until it exits; see cluster.BudgetOptions.Successor).
func startBudget(cfg *config.Config, srv *proxy.Server, instanceID string, successor bool, log *slog.Logger) (*cluster.Budget, error) {
	if !cfg.Cluster.Enabled() {
		return nil, nil
	}
	budgets := map[string]int{}
	limiters := map[string]cluster.Limiter{}
	for name, db := range cfg.Databases {
		if n := db.Pool.MaxDBConnections; n > 0 {
			budgets[name] = n
			limiters[name] = srv.DatabaseGate(name, n)
		}
	}
	if len(budgets) == 0 {
		return nil, nil
	}
	b, err := cluster.StartBudget(cluster.BudgetOptions{Config: cfg.Cluster, InstanceID: instanceID,
		Budgets: budgets, Limiters: limiters, Log: log, Successor: successor})
	if err != nil {
		return nil, err
	}
	srv.Metrics().Registry.MustRegister(b.Collectors()...)
	return b, nil
}

// leaveBudget gives this instance's shares back (after the clients are
// gone, before the membership's lease is revoked).
func (d *Daemon) leaveBudget() {
	if d.Budget == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.leaveTimeout)
	defer cancel()
	d.Budget.Close(ctx)
}

// reloadBudget hands the databases' max_db_connections, as reloaded, to
// the fleet's budget (every instance should be reloaded with the same
// value: the fingerprint compares databases, so SHOW PEERS shows the
// instances not reloaded yet).
func (d *Daemon) reloadBudget(cfg *config.Config) {
	if d.Budget == nil {
		return
	}
	for name, db := range cfg.Databases {
		if n := db.Pool.MaxDBConnections; n > 0 {
			d.Budget.SetTotal(name, n)
		}
	}
}
