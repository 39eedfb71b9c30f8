package topology

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Host is one server of a database, as configured.
type Host struct {
	// Name identifies the host in snapshots, logs and hooks: the address as
	// written in the configuration (config.Host.Display).
	Name string
	// Network ("tcp" or "unix") and Address are what a DialFunc dials.
	Network, Address string
}

// Role is what a host is, according to its own answers and the fencing
// rules.
type Role int

const (
	// RoleUnknown: the last probe failed, or none finished yet; or the
	// host claims to be primary and the Monitor has not yet heard from every
	// host once, which it waits for before choosing a first primary.
	RoleUnknown Role = iota
	// RolePrimary: not in recovery, and on the newest timeline seen.
	RolePrimary
	// RoleStandby: in recovery (pg_is_in_recovery() is true).
	RoleStandby
	// RoleFenced: claims to be a primary but is not to be written to: its
	// timeline is older than the newest one seen on any host (an old primary
	// back after a failover), or another primary on the same timeline was
	// chosen first.
	RoleFenced
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleStandby:
		return "standby"
	case RoleFenced:
		return "fenced"
	default:
		return "unknown"
	}
}

// LSN is a WAL position (pg_lsn).
type LSN uint64

// ParseLSN parses PostgreSQL's text form "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("topology: invalid LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("topology: invalid LSN %q", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// Observation is what one successful probe found out about a server.
type Observation struct {
	// InRecovery is pg_is_in_recovery(): true on a standby.
	InRecovery bool
	// Timeline: on a primary, the timeline it writes WAL on (exact, also
	// right after a promotion); on a standby, the timeline it receives, or
	// that of its last restartpoint when it is not streaming (may lag).
	Timeline uint32
	// FlushLSN is a primary's pg_current_wal_flush_lsn(): the WAL a standby
	// can have. 0 on a standby.
	FlushLSN LSN
	// ReceiveLSN and ReplayLSN are a standby's pg_last_wal_receive_lsn()
	// and pg_last_wal_replay_lsn() (0 when NULL).
	ReceiveLSN, ReplayLSN LSN
	// ReplayPaused is pg_is_wal_replay_paused() on a standby.
	ReplayPaused bool
}

// HostState is the monitor's view of one host.
type HostState struct {
	Host
	// Reachable: the last probe succeeded, so Role is known.
	Reachable bool
	Role      Role
	// Observation is the last successful probe's result (also kept while
	// the host is unreachable; LastSeen says when it was true).
	Observation
	// Lag is how far a standby's replay is behind the primary, in time:
	// how long the oldest primary WAL position it has not replayed has
	// existed (see the package doc). LagKnown is false until the monitor
	// has seen a primary's WAL position. Zero on a primary.
	Lag      time.Duration
	LagKnown bool
	// LagBytes is the newest primary flush position minus ReplayLSN.
	LagBytes uint64
	// Lagging: Lag is known and over Config.MaxReplicaLag.
	Lagging bool
	// Err is the last probe's error (nil after a success).
	Err error
	// LastProbe is when the last probe ended; LastSeen when the last
	// successful one did.
	LastProbe, LastSeen time.Time
	// DownSince is when the server stopped answering at all (connection
	// refused, reset or timed out); zero while it answers, even with an
	// error such as "the database system is starting up".
	DownSince time.Time
}

// Snapshot is a consistent view of a database's hosts.
type Snapshot struct {
	// Version grows with every material change (the host list, a host's
	// reachability, role, timeline, paused replay or Lagging, or the
	// writable primary); see Monitor.Changed.
	Version uint64
	// Hosts in configured order.
	Hosts []HostState
	// Primary is the Name of the one host writes may go to; "" when there
	// is none.
	Primary string
	// NoPrimarySince is when the database last lost its writable primary
	// (or when monitoring began); zero while there is one.
	NoPrimarySince time.Time
	// Failovers counts moves of the writable primary from one host to
	// another, whoever promoted it.
	Failovers int
	// MaxTimeline is the newest timeline seen on any host since monitoring
	// began; a primary on an older one is fenced.
	MaxTimeline uint32
}

// Host returns the state of the host with that name.
func (s Snapshot) Host(name string) (HostState, bool) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return HostState{}, false
}

// PrimaryHost returns the writable primary's state, if there is one.
func (s Snapshot) PrimaryHost() (HostState, bool) {
	if s.Primary == "" {
		return HostState{}, false
	}
	return s.Host(s.Primary)
}

// Standbys returns the reachable standbys whose replay lag is at most
// maxLag (maxLag <= 0: any lag), in configured order. A standby whose lag
// is not known yet (no primary seen since monitoring began) qualifies: it
// is as fresh as anything the monitor knows of.
func (s Snapshot) Standbys(maxLag time.Duration) []HostState {
	var out []HostState
	for _, h := range s.Hosts {
		if !h.Reachable || h.Role != RoleStandby {
			continue
		}
		if maxLag > 0 && h.LagKnown && h.Lag > maxLag {
			continue
		}
		out = append(out, h)
	}
	return out
}
