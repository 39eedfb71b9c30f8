package topology

import (
	"fmt"
	"time"
)

// AutoPromote is the built-in promotion policy (failover.auto_promote).
// When no server has answered as the writable primary and every server
// that might be one has been silent for After, the Monitor promotes the most
// advanced standby.
type AutoPromote struct {
	// After is failover.promote_after; 0 means 10s.
	After time.Duration
	// Timeout bounds one promotion (pg_promote waits for it); 0 means 60s.
	Timeout time.Duration
}

const (
	defaultPromoteAfter   = 10 * time.Second
	defaultPromoteTimeout = 60 * time.Second
)

func (a *AutoPromote) after() time.Duration {
	if a.After > 0 {
		return a.After
	}
	return defaultPromoteAfter
}

func (a *AutoPromote) timeout() time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return defaultPromoteTimeout
}

// decision is what the policy concluded; target is "" when it is not time
// to promote, and why says what it waits for (for tests and logs).
type decision struct {
	target string
	why    string
}

// decide applies the policy to a view of the hosts at time now. The
// rules, all of which must hold to promote:
//
//   - there is no writable primary;
//   - every host is a reachable standby, a fenced server (an old primary on
//     an older timeline, never to be written to), or has not answered at
//     all for at least After; so nothing that might still be the primary
//     answers, not even with an error such as "starting up";
//   - at least one host is silent (otherwise the primary is not among the
//     hosts, e.g. they are all standbys of a server not listed);
//   - some reachable standby is on the newest timeline seen (one still on
//     an older history would fork it).
//
// The target is the eligible standby with the most WAL: the highest of its
// receive and replay positions, since everything it received is replayed
// before promotion ends; ties go to the first in configured order.
func (a *AutoPromote) decide(hosts []HostState, primary string, maxTimeline uint32, now time.Time) decision {
	if primary != "" {
		return decision{why: "primary " + primary + " is writable"}
	}
	after := a.after()
	var silent []string
	var best *HostState
	bestLSN := LSN(0)
	for i := range hosts {
		h := &hosts[i]
		switch {
		case h.Reachable && h.Role == RoleStandby:
			if h.Timeline < maxTimeline {
				continue
			}
			if lsn := max(h.ReceiveLSN, h.ReplayLSN); best == nil || lsn > bestLSN {
				best, bestLSN = h, lsn
			}
		case h.Reachable && h.Role == RoleFenced:
		case h.LastProbe.IsZero():
			return decision{why: h.Name + " not probed yet"}
		case !h.DownSince.IsZero():
			if now.Sub(h.DownSince) < after {
				return decision{why: fmt.Sprintf("%s is silent; promoting once it has been for %v", h.Name, after)}
			}
			silent = append(silent, h.Name)
		default:
			return decision{why: h.Name + " answers but its role is unknown"}
		}
	}
	if len(silent) == 0 {
		return decision{why: "no host is down"}
	}
	if best == nil {
		return decision{why: fmt.Sprintf("no reachable standby on timeline %d", maxTimeline)}
	}
	return decision{target: best.Name, why: fmt.Sprintf("%v silent for over %v; %s has the most WAL (%s)", silent, after, best.Name, bestLSN)}
}
