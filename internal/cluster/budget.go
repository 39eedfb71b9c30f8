package cluster

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/internal/config"
)

// budgetPoll is how often an instance reads the budget keys and steps
// (budget_share.go): a join or a leave moves shares within a few polls.
const budgetPoll = 200 * time.Millisecond

// Limiter is what the budget needs of a database's pools (pool.Gate):
// a limit it sets and the connections they hold.
type Limiter interface {
	SetLimit(n int)
	Held() int
}

// BudgetOptions configure StartBudget.
type BudgetOptions struct {
	Config     config.Cluster
	InstanceID string
	// Budgets is each database's max_db_connections (the fleet's) and
	// Limiters its pools' gate, for the databases with one.
	Budgets  map[string]int
	Limiters map[string]Limiter
	Log      *slog.Logger
	// Successor is set in a process started by an upgrade: its
	// predecessor, with the same instance id, may still hold connections
	// under that id's share until it exits. The successor then writes its
	// share under an id of its own ("<instance id>~<random>": no
	// configured id has a "~" suffix of that kind by chance), so that the
	// two divide the budget as two members, the usual join and leave,
	// rather than overwriting each other's key (each would then take the
	// whole share, and the fleet could hold more than its budget).
	Successor bool
}

// Budget divides each database's max_db_connections among the live
// instances. Each instance writes the share it acknowledged under
// <prefix>budget/<database>/<instance id>, on a lease of its own (so a
// dead instance's share is freed when the lease expires), and its pools
// never hold more than that (see budget_share.go for why the fleet then
// never holds more than the budget). One goroutine (run) owns the etcd
// client and the lease from StartBudget to Close; shares are read
// through Shares.
//
// While etcd cannot be reached an instance keeps the share it
// acknowledged and never grows. An instance that lost its lease (etcd
// unreachable for longer than lease_ttl) registers again from a share of
// 0 and acknowledges what the others leave.
type Budget struct {
	opts  BudgetOptions
	log   *slog.Logger
	self  string // the id its share is written under (BudgetOptions.Successor)
	keys  string // <prefix>budget/
	share *prometheus.GaugeVec

	mu     sync.Mutex
	acked  map[string]int // this instance's acknowledged share by database
	totals map[string]int // each database's budget now (SetTotal changes it)
	cancel context.CancelFunc
	done   chan struct{}
}

// StartBudget starts dividing the budgets; it returns at once (etcd may
// be down: every share stays 0 until etcd gives one). The caller must
// Close it.
func StartBudget(o BudgetOptions) (*Budget, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	tlsCfg, err := etcdTLS(o.Config.Etcd)
	if err != nil {
		return nil, err
	}
	e := o.Config.Etcd
	client, err := clientv3.New(clientv3.Config{
		Endpoints: e.Endpoints, DialTimeout: e.DialTimeout.D(), DialKeepAliveTime: keepAliveTime,
		DialKeepAliveTimeout: e.DialTimeout.D(), TLS: tlsCfg, Username: e.Username, Password: e.Password,
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	self := o.InstanceID
	if o.Successor {
		self += "~" + newIncarnation()
	}
	b := &Budget{opts: o, self: self, log: o.Log.With("component", "cluster_budget", "instance_id", o.InstanceID, "budget_member", self),
		keys: o.Config.Prefix + "budget/", acked: map[string]int{}, totals: maps.Clone(o.Budgets), cancel: cancel, done: make(chan struct{}),
		share: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_budget_share",
			Help: "Server connections this instance may hold to the database: its acknowledged share of the fleet's max_db_connections.",
		}, []string{"database"})}
	for db := range o.Budgets {
		b.share.WithLabelValues(db).Set(0)
	}
	go b.run(ctx, client)
	return b, nil
}

// Collectors are the budget's metrics.
func (b *Budget) Collectors() []prometheus.Collector { return []prometheus.Collector{b.share} }

// Shares is this instance's acknowledged share by database.
func (b *Budget) Shares() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.acked)
}

// SetTotal applies a new budget (max_db_connections, at a reload) to
// database db: from the next poll its share is computed from it, and
// shrinking or growing follows the usual steps (busy connections are
// never closed; a raise is acknowledged only within what the others
// leave). It reports false, changing nothing, for a database this budget
// has not divided since the start, or a total below 1 (setting or
// removing a budget needs a restart: the pools' gates are made at start).
//
// Until every instance has the new value, each divides the one it has:
// the fleet then holds at most the largest of them.
func (b *Budget) SetTotal(db string, total int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.totals[db]
	if !ok || total < 1 {
		return false
	}
	if old != total {
		b.totals[db] = total
		b.log.Info("fleet budget: max_db_connections changed", "database", db, "from", old, "to", total)
	}
	return true
}

func (b *Budget) totalOf(db string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.totals[db]
}

// Close gives the shares back: the pools' limits go to 0 (the caller has
// stopped serving, so their connections close), then the lease is
// revoked so the others grow at once. ctx bounds the wait.
func (b *Budget) Close(ctx context.Context) {
	b.cancel()
	select {
	case <-b.done:
	case <-ctx.Done():
		<-b.done
	}
}

// run owns the client: one registration (a lease) after the other until
// ctx ends.
func (b *Budget) run(ctx context.Context, client *clientv3.Client) {
	defer close(b.done)
	defer client.Close()
	wait := minRetry
	for ctx.Err() == nil {
		err := b.register(ctx, client)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("fleet budget: not registered in etcd; keeping the shares acknowledged, never growing", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = nextRetry(wait, b.opts.Config.LeaseTTL.D())
	}
}

func (b *Budget) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opts.Config.Etcd.DialTimeout.D())
}

// register takes a lease and steps every database each poll until the
// lease is lost or ctx ends; on the way out it revokes the lease, after
// its pools let go of their connections when leaving.
func (b *Budget) register(ctx context.Context, client *clientv3.Client) error {
	sess, err := grantLeased(ctx, client, b.opts.Config, "a lease")
	if err != nil {
		return err
	}
	// A new lease: nothing of this instance is in etcd under it yet.
	b.mu.Lock()
	clear(b.acked)
	b.mu.Unlock()
	defer func() {
		sess.Orphan()
		if ctx.Err() != nil {
			b.release()
		}
		sess.revoke()
	}()
	tick := time.NewTicker(budgetPoll)
	defer tick.Stop()
	for {
		for _, db := range slices.Sorted(maps.Keys(b.opts.Budgets)) {
			if err := b.step(ctx, client, sess.id, db); err != nil && ctx.Err() == nil {
				b.log.Debug("fleet budget: step failed; keeping the share acknowledged", "database", db, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			return errLeaseLost
		case <-tick.C:
		}
	}
}

// release lowers every limit to 0 and waits (bounded by dial_timeout)
// for the pools to close their connections, before the lease is revoked.
func (b *Budget) release() {
	deadline := time.Now().Add(b.opts.Config.Etcd.DialTimeout.D())
	for db, l := range b.opts.Limiters {
		l.SetLimit(0)
		b.setAcked(db, 0)
	}
	for _, l := range b.opts.Limiters {
		for l.Held() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// step reads database db's keys and takes the next step (budget_share.go).
func (b *Budget) step(ctx context.Context, client *clientv3.Client, lease clientv3.LeaseID, db string) error {
	prefix := b.keys + db + "/"
	own := prefix + b.self
	rctx, cancel := b.request(ctx)
	resp, err := client.Get(rctx, prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return err
	}
	acked := map[string]int{}
	members := []string{b.self}
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), prefix)
		n, err := strconv.Atoi(string(kv.Value))
		if err != nil || n < 0 || strings.Contains(id, "/") {
			continue // not ours to judge: ignored (it counts as no share)
		}
		if id == b.self && kv.Lease != int64(lease) {
			continue // a previous lease's, about to go
		}
		acked[id] = n
		members = append(members, id)
	}
	total := b.totalOf(db)
	limiter := b.opts.Limiters[db]
	s := NextBudgetStep(total, members, acked, b.self)
	if s.Limit < b.limitOf(db) {
		limiter.SetLimit(s.Limit) // shrink at once; growing waits for the write
	}
	switch {
	case s.Shrink:
		if limiter.Held() > s.Write {
			return nil // busy connections not back yet: the next poll sees
		}
		rctx, cancel := b.request(ctx)
		_, err := client.Put(rctx, own, strconv.Itoa(s.Write), clientv3.WithLease(lease))
		cancel()
		if err != nil {
			return err
		}
	case s.Grow:
		rctx, cancel := b.request(ctx)
		txn, err := client.Txn(rctx).
			If(clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", resp.Header.Revision+1)).
			Then(clientv3.OpPut(own, strconv.Itoa(s.Write), clientv3.WithLease(lease))).Commit()
		cancel()
		if err != nil {
			return err
		}
		if !txn.Succeeded {
			return nil // another instance wrote meanwhile: read again at the next poll
		}
	default:
		b.setAcked(db, s.Limit)
		limiter.SetLimit(s.Limit)
		return nil
	}
	b.setAcked(db, s.Write)
	limiter.SetLimit(s.Write)
	if s.Grow || s.Shrink {
		b.log.Info("fleet budget: share acknowledged", "database", db, "share", s.Write, "budget", total, "instances", len(members))
	}
	return nil
}

func (b *Budget) limitOf(db string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.acked[db]
}

func (b *Budget) setAcked(db string, n int) {
	b.mu.Lock()
	b.acked[db] = n
	b.mu.Unlock()
	b.share.WithLabelValues(db).Set(float64(n))
}
