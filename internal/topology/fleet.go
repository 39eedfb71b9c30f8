package topology

import (
	"context"
	"fmt"
	"time"
)

// Fleet is the fleet-wide authority over one database's failover, when
// several sluices serve it (cluster: with failover.auto_promote): an
// etcd election says which instance may promote, and the decision it
// wrote names the server every instance writes to. internal/cluster
// implements it (through an adapter in daemon); a Monitor without one
// decides alone, as a single sluice always did.
//
// Its methods are called with the Monitor's lock held, except Write:
// they must not block on I/O nor call back into the Monitor.
type Fleet interface {
	// Decision is the last decision this instance knows (read from etcd
	// and kept while etcd is unreachable); ok is false when none was ever
	// written.
	Decision() (d Decision, ok bool)
	// Changed is closed at the next change of the decision, of the
	// leadership or of Available.
	Changed() <-chan struct{}
	// Leading reports whether this instance holds the database's
	// election.
	Leading() bool
	// Available reports whether etcd answers; why says why not.
	Available() (ok bool, why string)
	// Write records d in etcd, only if this instance still leads and the
	// decision there is still the one Decision returns: d.Epoch is one
	// more than it (a new decision), or the same with Done set (the
	// intent carried out). It returns an error otherwise and when etcd
	// does not answer; then nothing may be promoted.
	Write(ctx context.Context, d Decision) error
}

// Decision is the fleet's record of which server takes writes.
type Decision struct {
	// Epoch grows by one with every decision (the fencing epoch).
	Epoch uint64
	// Primary is the Name of the server writes go to (or, before Done,
	// the standby being promoted).
	Primary string
	// Timeline is Primary's timeline once Done.
	Timeline uint32
	// Done is false for an intent: the leader chose Primary and may not
	// have promoted it yet. Whoever leads next finishes it.
	Done bool
	// Leader and At say who wrote it and when (set by Write).
	Leader string
	At     time.Time
}

// fleetActionKind is what the leader does next.
type fleetActionKind int

const (
	fleetWait      fleetActionKind = iota
	fleetBootstrap                 // no decision yet: record the primary in use as epoch 1
	fleetPromote                   // write an intent (next epoch), promote, record it done
	fleetFinish                    // an unfinished intent names a standby: promote it, record it done
	fleetComplete                  // an unfinished intent's target is already primary: record it done
	fleetAdopt                     // the decided primary is gone and one other server is primary: record it
)

// fleetAction is decideFleet's result: what to do (target at epoch,
// with timeline for a record of a server already primary), or why to
// wait.
type fleetAction struct {
	kind     fleetActionKind
	target   string
	epoch    uint64
	timeline uint32
	why      string
	// blocked: a failover is called for but etcd does not answer.
	blocked bool
	// manual: an operator's switchover, not auto_promote.
	manual bool
}

// fleetView is what decideFleet decides from.
type fleetView struct {
	hosts       []HostState
	primary     string // the writable primary as routed (the decided one, if it answers as primary)
	maxTimeline uint32
	decision    Decision
	decided     bool
	leading     bool
	available   bool
	unavailable string
	// policy is AutoPromote.decide's conclusion on the same view.
	policy decision
	after  time.Duration
	now    time.Time
}

// decideFleet is the promoter's core: a value in, a value out. Only the
// leader acts, and never while etcd is unreachable (every instance then
// reports what the leader would do as blocked, since an instance cut
// off from etcd soon leads no more) (safety over
// liveness: a leader cut off from etcd may have been replaced already).
// An unfinished intent is finished on the server it names (promotion is
// idempotent); another standby is chosen only once that server has been
// silent for After or is no longer configured, so two leaders in a row
// never promote two different servers while the first could still be
// promoted.
func decideFleet(v fleetView) fleetAction {
	act := leaderAction(v)
	if !v.available {
		// What the leader would do is only reported: it may have been
		// replaced already, and its write would fail anyway.
		why := "failover is disabled while etcd is unreachable: " + v.unavailable
		if act.kind != fleetWait {
			return fleetAction{why: why + "; otherwise: " + act.name() + " " + act.target + " (" + act.why + ")", blocked: true}
		}
		return fleetAction{why: why}
	}
	if !v.leading {
		return fleetAction{why: "another instance leads failover for this database"}
	}
	return act
}

// leaderAction is what the leader does when etcd answers.
func leaderAction(v fleetView) fleetAction {
	next := v.decision.Epoch + 1
	if !v.decided {
		if v.primary != "" {
			h, _ := hostIn(v.hosts, v.primary)
			return fleetAction{kind: fleetBootstrap, target: v.primary, epoch: 1, timeline: h.Timeline,
				why: "no decision in etcd yet: recording the primary in use"}
		}
		if v.policy.target != "" {
			return fleetAction{kind: fleetPromote, target: v.policy.target, epoch: 1, why: v.policy.why}
		}
		return fleetAction{why: v.policy.why}
	}
	d := v.decision
	if !d.Done {
		h, listed := hostIn(v.hosts, d.Primary)
		switch {
		case listed && h.Reachable && !h.InRecovery:
			return fleetAction{kind: fleetComplete, target: d.Primary, epoch: d.Epoch, timeline: h.Timeline,
				why: fmt.Sprintf("the intent of epoch %d is carried out: %s is primary", d.Epoch, d.Primary)}
		case listed && h.Reachable && h.Role == RoleStandby:
			return fleetAction{kind: fleetFinish, target: d.Primary, epoch: d.Epoch,
				why: fmt.Sprintf("finishing the intent of epoch %d (written by %s)", d.Epoch, d.Leader)}
		case !listed || gone(h, v.after, v.now):
			if v.policy.target != "" && v.policy.target != d.Primary {
				return fleetAction{kind: fleetPromote, target: v.policy.target, epoch: next,
					why: fmt.Sprintf("%s, named by the unfinished intent of epoch %d, is gone; %s", d.Primary, d.Epoch, v.policy.why)}
			}
			return fleetAction{why: fmt.Sprintf("%s, named by the unfinished intent of epoch %d, is gone; %s", d.Primary, d.Epoch, v.policy.why)}
		default:
			return fleetAction{why: fmt.Sprintf("waiting for %s, named by the unfinished intent of epoch %d", d.Primary, d.Epoch)}
		}
	}
	if v.primary == d.Primary {
		return fleetAction{why: fmt.Sprintf("primary %s is writable (epoch %d)", d.Primary, d.Epoch)}
	}
	if v.policy.target != "" {
		return fleetAction{kind: fleetPromote, target: v.policy.target, epoch: next, why: v.policy.why}
	}
	// The decided primary is gone and another server took over outside
	// sluice (an operator promoted it): adopt it, as a single sluice
	// would, once the decided one has been silent for After.
	if h, listed := hostIn(v.hosts, d.Primary); !listed || gone(h, v.after, v.now) {
		var claims []HostState
		for _, h := range v.hosts {
			if h.Reachable && !h.InRecovery && h.Timeline >= v.maxTimeline && h.Name != d.Primary {
				claims = append(claims, h)
			}
		}
		if len(claims) == 1 {
			return fleetAction{kind: fleetAdopt, target: claims[0].Name, epoch: next, timeline: claims[0].Timeline,
				why: fmt.Sprintf("%s (epoch %d) is gone and %s is primary on timeline %d", d.Primary, d.Epoch, claims[0].Name, claims[0].Timeline)}
		}
	}
	return fleetAction{why: v.policy.why}
}

// gone: the host has not answered at all for at least after.
func gone(h HostState, after time.Duration, now time.Time) bool {
	return !h.DownSince.IsZero() && now.Sub(h.DownSince) >= after
}

func hostIn(hosts []HostState, name string) (HostState, bool) {
	for _, h := range hosts {
		if h.Name == name {
			return h, true
		}
	}
	return HostState{}, false
}
