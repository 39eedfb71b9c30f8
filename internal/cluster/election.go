package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// errNotLeader refuses a decision from an instance that does not lead.
var errNotLeader = errors.New("this instance does not lead failover for the database")

// Election is one database's failover election and decision as this
// instance sees them. Its goroutine (run) writes the state; every
// method is safe for concurrent use and none blocks on etcd except
// Write.
type Election struct {
	p                     *Promoter
	db                    string
	electionKey, decision string // etcd keys

	mu        sync.Mutex
	cur       Decision
	have      bool
	rev       int64 // the decision key's mod revision (0: none)
	leading   bool
	leaderKey string // our key under the election prefix, and its create revision
	leaderRev int64
	// holder is the instance id that holds the election as last read
	// (this one's while leading; else read from etcd at each probe, so
	// it may be up to a probe old; "" when nobody holds it).
	holder    string
	available bool
	why       string
	changed   chan struct{}
}

func newElection(p *Promoter, db string) *Election {
	prefix := p.member.opts.Config.Prefix
	return &Election{p: p, db: db, electionKey: prefix + "elections/" + db, decision: prefix + "primary/" + db,
		why: "connecting to etcd", changed: make(chan struct{})}
}

// Decision is the last decision read from etcd (kept while it is
// unreachable).
func (e *Election) Decision() (Decision, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur, e.have
}

// Changed is closed at the next change of the decision, leadership or
// availability.
func (e *Election) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// Leading reports whether this instance holds the election.
func (e *Election) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

// Available reports whether etcd answered this election's last request.
func (e *Election) Available() (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.available, e.why
}

// notifyLocked wakes Changed's waiters and updates the gauges.
func (e *Election) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
	e.p.leader.WithLabelValues(e.db).Set(b2f(e.leading))
	e.p.epoch.WithLabelValues(e.db).Set(float64(e.cur.Epoch))
	e.p.blocked.WithLabelValues(e.db).Set(b2f(!e.available))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (e *Election) setAvailable(ok bool, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ok == e.available && why == e.why {
		return
	}
	if !ok && e.available {
		e.p.log.Error("failover disabled while etcd is unreachable: the known primary keeps being served, nothing is promoted",
			"database", e.db, "reason", why, "epoch", e.cur.Epoch, "primary", e.cur.Primary)
	} else if ok && !e.available {
		e.p.log.Info("etcd answers again: failover enabled", "database", e.db)
	}
	e.available, e.why = ok, why
	e.notifyLocked()
}

// setLeader records the outcome of a campaign (key "" when not leading).
func (e *Election) setLeader(key string, rev int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	was := e.leading
	e.leading, e.leaderKey, e.leaderRev = key != "", key, rev
	if e.leading {
		e.holder = e.p.member.opts.InstanceID
	} else if was {
		e.holder = "" // unknown until the next probe
	}
	switch {
	case e.leading && !was:
		e.p.log.Warn("this instance leads failover for the database", "database", e.db, "epoch", e.cur.Epoch)
	case !e.leading && was:
		e.p.log.Warn("this instance no longer leads failover for the database", "database", e.db)
	}
	e.notifyLocked()
}

// apply takes a decision read from etcd at mod revision rev (value nil:
// deleted).
func (e *Election) apply(value []byte, rev int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rev != 0 && rev <= e.rev {
		return // already known (our own write, seen again by the watch)
	}
	if value == nil {
		e.cur, e.have, e.rev = Decision{}, false, rev
		e.notifyLocked()
		return
	}
	d, err := decodeDecision(value)
	if err != nil {
		// Kept as it was: routing on a garbled record would be worse.
		e.p.log.Error("ignoring a failover decision in etcd that does not parse", "database", e.db, "error", err)
		e.rev = rev
		return
	}
	if e.have && (d.Epoch != e.cur.Epoch || d.Primary != e.cur.Primary || d.Done != e.cur.Done) {
		e.p.log.Warn("failover decision", "database", e.db, "epoch", d.Epoch, "primary", d.Primary, "done", d.Done,
			"timeline", d.Timeline, "leader", d.Leader)
	}
	e.cur, e.have, e.rev = d, true, rev
	e.notifyLocked()
}

// Write records next in etcd if this instance still leads (its election
// key has the create revision it campaigned with) and the decision there
// is still the one it knows (same mod revision). See nextAllowed.
func (e *Election) Write(ctx context.Context, next Decision) error {
	e.mu.Lock()
	cur, have, rev, leading, key, krev := e.cur, e.have, e.rev, e.leading, e.leaderKey, e.leaderRev
	e.mu.Unlock()
	if !leading {
		return errNotLeader
	}
	if err := nextAllowed(cur, have, next); err != nil {
		return err
	}
	client, err := e.p.etcd()
	if err != nil {
		return err
	}
	next.Leader, next.At = e.p.member.opts.InstanceID, time.Now().UTC().Truncate(time.Millisecond)
	rctx, cancel := e.p.member.request(ctx)
	resp, err := client.Txn(rctx).If(
		clientv3.Compare(clientv3.CreateRevision(key), "=", krev),
		clientv3.Compare(clientv3.ModRevision(e.decision), "=", rev),
	).Then(clientv3.OpPut(e.decision, next.encode())).Commit()
	cancel()
	if err != nil {
		e.setAvailable(false, "writing the failover decision: "+err.Error())
		return fmt.Errorf("writing the failover decision: %w", err)
	}
	if !resp.Succeeded {
		return errors.New("the failover decision was not written: this instance no longer leads, or another decision came first")
	}
	e.p.log.Warn("failover decision written", "database", e.db, "epoch", next.Epoch, "primary", next.Primary,
		"done", next.Done, "timeline", next.Timeline)
	if next.Epoch != cur.Epoch {
		e.p.decisions.WithLabelValues(e.db).Inc()
	}
	e.apply([]byte(next.encode()), resp.Header.Revision)
	if !next.Done {
		e.p.mu.Lock()
		hook := e.p.afterIntent
		e.p.mu.Unlock()
		if hook != nil {
			hook(ctx, e.db, next.Epoch)
			if ctx.Err() != nil || e.p.ctx.Err() != nil {
				return errors.New("the instance stopped after writing the intent")
			}
		}
	}
	return nil
}

// run campaigns, one etcd session after the other, until ctx ends.
func (e *Election) run(ctx context.Context) {
	wait := minRetry
	defer func() { // stopping is no outage: nothing to log
		e.mu.Lock()
		e.available, e.why = false, "this instance stopped taking part in failover"
		e.notifyLocked()
		e.mu.Unlock()
	}()
	for ctx.Err() == nil {
		err := e.term(ctx)
		e.setLeader("", 0)
		if ctx.Err() != nil {
			return
		}
		e.setAvailable(false, err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = nextRetry(wait, e.p.member.opts.Config.LeaseTTL.D())
	}
}

// term is one session: a lease, the decision read and watched, and a
// campaign, until the lease is lost, etcd fails a request that the
// session needs, or ctx ends (then it resigns by revoking the lease).
func (e *Election) term(ctx context.Context) error {
	client, err := e.p.etcd()
	if err != nil {
		return err
	}
	m := e.p.member
	sess, err := grantLeased(ctx, client, m.opts.Config, "the election's lease")
	if err != nil {
		return err
	}
	defer sess.revoke()
	rctx, cancel := m.request(ctx)
	resp, err := client.Get(rctx, e.decision)
	cancel()
	if err != nil {
		return fmt.Errorf("reading the failover decision: %w", err)
	}
	if len(resp.Kvs) == 0 {
		e.apply(nil, 0)
	} else {
		e.apply(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	}
	e.setAvailable(true, "")
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events := client.Watch(wctx, e.decision, clientv3.WithRev(resp.Header.Revision+1))

	el := concurrency.NewElection(sess.Session, e.electionKey)
	won := make(chan error, 1)
	cctx, stopCampaign := context.WithCancel(ctx)
	var campaign sync.WaitGroup
	campaign.Add(1)
	go func() {
		defer campaign.Done()
		won <- el.Campaign(cctx, m.opts.InstanceID)
	}()
	defer func() { stopCampaign(); campaign.Wait() }()

	e.probe(ctx, el)
	probe := time.NewTicker(max(m.opts.Config.LeaseTTL.D()/3, 500*time.Millisecond))
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			return errLeaseLost
		case err := <-won:
			if err != nil {
				return fmt.Errorf("campaigning: %w", err)
			}
			e.setLeader(el.Key(), el.Rev())
		case wr, ok := <-events:
			if !ok {
				return errors.New("the watch of the failover decision ended")
			}
			if wr.Canceled {
				return fmt.Errorf("watching the failover decision: %w", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					e.apply(nil, ev.Kv.ModRevision)
				} else {
					e.apply(ev.Kv.Value, ev.Kv.ModRevision)
				}
			}
		case <-probe.C:
			e.probe(ctx, el)
		}
	}
}

// probe reads who holds the election (for SHOW FAILOVER), which also
// tells whether etcd answers.
func (e *Election) probe(ctx context.Context, el *concurrency.Election) {
	rctx, cancel := e.p.member.request(ctx)
	resp, err := el.Leader(rctx)
	cancel()
	switch {
	case errors.Is(err, concurrency.ErrElectionNoLeader):
		e.setHolder("")
		e.setAvailable(true, "")
	case err != nil:
		if ctx.Err() == nil {
			e.setAvailable(false, "etcd unreachable: "+err.Error())
		}
	default:
		e.setHolder(string(resp.Kvs[0].Value))
		e.setAvailable(true, "")
	}
}

func (e *Election) setHolder(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.leading {
		e.holder = id
	}
}

// ElectionStatus is one database's failover election and decision as
// this instance knows them, for SHOW FAILOVER.
type ElectionStatus struct {
	Database string
	// Decision is the last decision read from etcd (Have false: none
	// was ever written).
	Decision Decision
	Have     bool
	// Leading: this instance holds the election; Holder is the instance
	// that holds it as last read ("" when nobody does).
	Leading bool
	Holder  string
	// Available: etcd answered this election's last request; Why says
	// why not.
	Available bool
	Why       string
}

// Status is the election's state now.
func (e *Election) Status() ElectionStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	return ElectionStatus{Database: e.db, Decision: e.cur, Have: e.have, Leading: e.leading, Holder: e.holder,
		Available: e.available, Why: e.why}
}
