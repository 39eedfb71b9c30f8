package cluster

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Promoter holds, for every database whose failover the fleet decides
// (failover.auto_promote), an etcd election under
// <prefix>elections/<database> and the decision under
// <prefix>primary/<database> (see Decision). Only the election's holder
// may write a decision, in a transaction conditioned on its election key
// (so a leader that lost its lease cannot), and only after writing it
// may it promote: a decision is an intent first and done once the
// server left recovery, so that whoever leads next can finish it.
//
// Each database has one goroutine (Election.run), started by the first
// Database call and ended by Close. It owns that database's etcd
// session: its own lease, with cluster.lease_ttl, next to the member's,
// so that the member's registrations and the elections come and go
// independently (a lost election lease is replaced by a new campaign,
// the member's by a new registration). The etcd client is the
// Promoter's, shared by the databases.
type Promoter struct {
	member *Member
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	decisions *prometheus.CounterVec
	leader    *prometheus.GaugeVec
	epoch     *prometheus.GaugeVec
	blocked   *prometheus.GaugeVec

	mu     sync.Mutex
	client *clientv3.Client
	dbs    map[string]*Election
	closed bool
	// afterIntent, a test hook, runs after an intent (of epoch) is
	// written and before Write returns (so before anything is promoted).
	afterIntent func(ctx context.Context, database string, epoch uint64)
}

// NewPromoter returns the fleet's promoter for m's instance. It starts
// nothing until Database is called; Close stops it.
func NewPromoter(m *Member) *Promoter {
	ctx, cancel := context.WithCancel(context.Background())
	return &Promoter{
		member: m, log: m.log.With("component", "failover"), ctx: ctx, cancel: cancel, dbs: map[string]*Election{},
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_cluster_failover_decisions_total",
			Help: "Failover decisions (new fencing epochs) this instance wrote to etcd as the database's leader: the first record of the primary, promotions, adoptions.",
		}, []string{"database"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_failover_leader",
			Help: "1 while this instance holds the database's failover election (only the leader promotes), else 0.",
		}, []string{"database"}),
		epoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_fencing_epoch",
			Help: "The epoch of the database's failover decision in etcd as this instance last read it (0: none yet).",
		}, []string{"database"}),
		blocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_failover_blocked",
			Help: "1 while failover of the database is disabled because etcd is unreachable (the known primary keeps being served, nothing is promoted).",
		}, []string{"database"}),
	}
}

// Collectors are the promoter's metrics, for the caller to register.
func (p *Promoter) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.decisions, p.leader, p.epoch, p.blocked}
}

// Database returns the election of db, starting it on first use.
func (p *Promoter) Database(db string) *Election {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.dbs[db]; e != nil {
		return e
	}
	e := newElection(p, db)
	p.dbs[db] = e
	if !p.closed {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			e.run(p.ctx)
		}()
	}
	return e
}

// Blocked lists the databases whose failover is disabled now, each with
// why (etcd unreachable), for /readyz.
func (p *Promoter) Blocked() map[string]string {
	p.mu.Lock()
	dbs := make([]*Election, 0, len(p.dbs))
	for _, e := range p.dbs {
		dbs = append(dbs, e)
	}
	p.mu.Unlock()
	out := map[string]string{}
	for _, e := range dbs {
		if ok, why := e.Available(); !ok {
			out[e.db] = why
		}
	}
	return out
}

// Status lists the elections of the databases this instance takes part
// in, ordered by database.
func (p *Promoter) Status() []ElectionStatus {
	p.mu.Lock()
	dbs := make([]*Election, 0, len(p.dbs))
	for _, e := range p.dbs {
		dbs = append(dbs, e)
	}
	p.mu.Unlock()
	out := make([]ElectionStatus, 0, len(dbs))
	for _, e := range dbs {
		out = append(out, e.Status())
	}
	slices.SortFunc(out, func(a, b ElectionStatus) int { return strings.Compare(a.Database, b.Database) })
	return out
}

// SetAfterIntent installs a test hook run after every intent this
// instance writes (with the intent's epoch), before anything is
// promoted.
func (p *Promoter) SetAfterIntent(f func(ctx context.Context, database string, epoch uint64)) {
	p.mu.Lock()
	p.afterIntent = f
	p.mu.Unlock()
}

// etcd returns the shared client, creating it on first use.
func (p *Promoter) etcd() (*clientv3.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("the promoter is closed")
	}
	if p.client == nil {
		c, err := p.member.dial()
		if err != nil {
			return nil, err
		}
		p.client = c
	}
	return p.client, nil
}

// Close resigns every election (revoking its lease, so that another
// instance takes over at once) and waits for the goroutines.
//
// A campaign that is cancelled resigns with the etcd client's own
// context (etcd's concurrency package), so while etcd does not answer it
// ends only when the client is closed: Close waits for the elections to
// resign and revoke (each request bounded by cluster.etcd.dial_timeout)
// for twice that at most, then closes the client, which ends them.
// Without that bound a SIGTERM while etcd was down never finished.
func (p *Promoter) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	bound := time.NewTimer(2 * p.member.opts.Config.Etcd.DialTimeout.D())
	select {
	case <-done:
	case <-bound.C:
		p.log.Warn("etcd does not answer: leaving the failover elections without resigning (their leases expire within cluster.lease_ttl)")
	}
	bound.Stop()
	p.mu.Lock()
	if p.client != nil {
		p.client.Close()
		p.client = nil
	}
	p.mu.Unlock()
	<-done
}
