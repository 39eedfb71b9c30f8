package topology

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SetFleet puts the database's failover under the fleet's authority (see
// Fleet): from then on only the leader promotes, and writes go only to
// the server the fleet's decision names. The owner calls it once, before
// or after Run.
func (m *Monitor) SetFleet(f Fleet) {
	m.mu.Lock()
	before := m.stateLocked()
	m.fleet = f
	if m.running && f != nil {
		m.startFleetWatchLocked(f)
	}
	events := m.updateLocked(time.Now(), before)
	m.emit(events)
}

// startFleetWatchLocked starts the goroutine that re-derives the view
// whenever the fleet's decision, leadership or availability changes, and
// probes every host at once so that all instances follow a new decision
// within one probe of it. It ends with Run or when another Fleet is set.
func (m *Monitor) startFleetWatchLocked(f Fleet) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			ch := f.Changed()
			m.mu.Lock()
			if m.fleet != f || !m.running {
				m.mu.Unlock()
				return
			}
			before := m.stateLocked()
			d, _ := f.Decision()
			if d.Epoch != m.fleetEpoch {
				m.fleetEpoch = d.Epoch
				for _, h := range m.hosts {
					select {
					case h.poke <- struct{}{}:
					default:
					}
				}
			}
			events := m.updateLocked(time.Now(), before)
			m.emit(events)
			select {
			case <-m.runCtx.Done():
				return
			case <-ch:
			}
		}
	}()
}

// routeByDecisionLocked chooses the writable primary among the servers
// that claim to be one when the fleet has decided: the one it names, and
// no other (the others are fenced). ok is false without a decision, and
// the single-instance rules apply.
func (m *Monitor) routeByDecisionLocked(claims []*hostRunner) (primary string, ok bool) {
	d, decided := m.decision, m.decided
	if m.fleet == nil || !decided {
		return "", false
	}
	if m.hostLocked(d.Primary) == nil {
		// The fleet names a server this instance does not have (its
		// hosts differ from the others': SHOW PEERS says so). Routing
		// to nothing would stop its writes; it routes as a single
		// sluice and says why.
		if desc := "unknown " + d.Primary; desc != m.fleetConflict {
			m.fleetConflict = desc
			m.log.Error("the fleet's decision in etcd names a server this instance does not have in its hosts; routing on its own probes",
				"primary", d.Primary, "epoch", d.Epoch)
		}
		return "", false
	}
	var fenced []string
	for _, h := range claims {
		if h.host.Name == d.Primary {
			h.st.Role, primary = RolePrimary, d.Primary
			continue
		}
		h.st.Role = RoleFenced
		fenced = append(fenced, fmt.Sprintf("%s (timeline %d)", h.host.Name, h.st.Timeline))
	}
	desc := ""
	if len(fenced) > 0 {
		desc = fmt.Sprintf("etcd names %s (epoch %d); fenced: %s", d.Primary, d.Epoch, strings.Join(fenced, ", "))
	}
	if desc != m.fleetConflict && desc != "" {
		m.log.Error("a server claims to be primary but the fleet's decision in etcd names another; it is fenced (never written to)",
			"primary", d.Primary, "epoch", d.Epoch, "fenced", fenced)
	}
	m.fleetConflict = desc
	return primary, true
}

// fleetLocked is autoPromoteLocked for a database under a Fleet: it
// applies decideFleet and starts what it says in a goroutine.
func (m *Monitor) fleetLocked(now time.Time) []func() {
	if !m.running || m.promoting {
		return nil
	}
	f, a := m.fleet, m.cfg.AutoPromote
	v := fleetView{hosts: m.statesLocked(), primary: m.primary, maxTimeline: m.maxTimeline, now: now,
		policy: decision{why: "auto_promote is off"}, after: defaultPromoteAfter}
	if a != nil {
		v.after = a.after()
		if !m.promotedAt.IsZero() && now.Sub(m.promotedAt) < v.after {
			return nil
		}
		v.policy = a.decide(v.hosts, m.primary, m.maxTimeline, now)
	}
	v.decision, v.decided = f.Decision()
	v.leading = f.Leading()
	v.available, v.unavailable = f.Available()
	act := decideFleet(v)
	if act.kind == fleetWait {
		if act.why != m.waitingWhy && (m.primary == "" || act.blocked) && m.allProbedLocked() {
			if act.blocked {
				m.log.Error("failover blocked", "reason", act.why)
			} else {
				m.log.Info("automatic promotion: waiting", "reason", act.why)
			}
		}
		m.waitingWhy = act.why
		return nil
	}
	m.waitingWhy = ""
	m.promoting = true
	m.log.Warn("fleet failover step", "action", act.name(), "server", act.target, "epoch", act.epoch, "reason", act.why)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		timeout := defaultPromoteTimeout
		if a != nil {
			timeout = a.timeout()
		}
		ctx, cancel := context.WithTimeout(m.runCtx, timeout)
		promoted, err := m.runFleetAction(ctx, f, act)
		cancel()
		m.mu.Lock()
		m.promoting = false
		if promoted {
			m.promotedAt = time.Now()
		}
		m.mu.Unlock()
		if err != nil && m.runCtx.Err() == nil {
			m.log.Error("fleet failover step failed", "action", act.name(), "server", act.target, "epoch", act.epoch, "error", err)
		}
		// Re-derive at once: the write changed the decision, or failed.
		m.mu.Lock()
		before := m.stateLocked()
		m.emit(m.updateLocked(time.Now(), before))
	}()
	return nil
}

func (a fleetAction) name() string {
	return [...]string{"wait", "bootstrap", "promote", "finish", "complete", "adopt"}[a.kind]
}

// runFleetAction carries out act: decisions are written before anything
// is promoted (an intent), and recorded done once the promoted server
// has left recovery, with its new timeline. promoted says whether a
// promotion was attempted.
func (m *Monitor) runFleetAction(ctx context.Context, f Fleet, act fleetAction) (promoted bool, err error) {
	switch act.kind {
	case fleetBootstrap, fleetComplete, fleetAdopt:
		return false, f.Write(ctx, Decision{Epoch: act.epoch, Primary: act.target, Timeline: act.timeline, Done: true})
	case fleetPromote:
		if err := f.Write(ctx, Decision{Epoch: act.epoch, Primary: act.target}); err != nil {
			return false, fmt.Errorf("writing the intent: %w", err)
		}
	case fleetFinish:
	default:
		return false, nil
	}
	m.mu.Lock()
	h := m.hostLocked(act.target)
	m.mu.Unlock()
	if h == nil {
		return false, fmt.Errorf("no host %s", act.target)
	}
	// Leadership may have gone while the intent was written (an etcd
	// session that expired during an outage is noticed late): the next
	// leader finishes the same intent, so promoting here as well would
	// make two pg_promote calls. The intent stays for it.
	if err := fleetRefusal(f); err != nil {
		return false, fmt.Errorf("not promoting %s: this instance no longer leads failover, and the leader finishes the intent of epoch %d: %w", act.target, act.epoch, err)
	}
	err = m.cfg.Prober.Promote(ctx, h.host)
	m.promoted(h, !act.manual, err)
	if err != nil {
		return true, err
	}
	obs, err := m.cfg.Prober.Probe(ctx, h.host)
	if err == nil && obs.InRecovery {
		err = errors.New("still in recovery after the promotion")
	}
	if err != nil {
		return true, fmt.Errorf("reading the timeline of %s after its promotion: %w", act.target, err)
	}
	return true, f.Write(ctx, Decision{Epoch: act.epoch, Primary: act.target, Timeline: obs.Timeline, Done: true})
}

// FleetRefusal says why this instance may not promote a server of the
// database now (nil: it may): in a fleet only the leader may, and only
// while etcd answers.
func (m *Monitor) FleetRefusal() error {
	m.mu.Lock()
	f := m.fleet
	m.mu.Unlock()
	if f == nil {
		return nil
	}
	return fleetRefusal(f)
}

func fleetRefusal(f Fleet) error {
	if ok, why := f.Available(); !ok {
		return errors.New("failover is disabled while etcd is unreachable: " + why)
	}
	if !f.Leading() {
		return errors.New("another instance of the fleet leads failover for this database; promote there")
	}
	return nil
}

// promoteThroughFleet is Promote (a switchover) under a Fleet: only the
// leader may, and the decision goes to etcd first.
func (m *Monitor) promoteThroughFleet(ctx context.Context, f Fleet, host string) error {
	if err := fleetRefusal(f); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	d, _ := f.Decision()
	_, err := m.runFleetAction(ctx, f, fleetAction{kind: fleetPromote, target: host, epoch: d.Epoch + 1, manual: true})
	return err
}
