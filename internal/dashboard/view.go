package dashboard

import (
	"cmp"
	"slices"
	"time"
)

// View is what /dashboard.json serves and the page renders. A pointer
// field is nil (JSON null, "–" on the page) when its series is absent.
type View struct {
	At time.Time `json:"at"`
	// WindowSeconds is the span the rates and percentiles cover: up to
	// a minute, less while the dashboard has been looked at for less
	// (snapshots are taken only while someone polls); 0 with a single
	// snapshot, when every rate and percentile is null.
	WindowSeconds     float64        `json:"window_seconds"`
	ClientConnections *float64       `json:"client_connections"`
	Databases         []DatabaseView `json:"databases"`
	Pins              []ReasonCount  `json:"pins"`
	Refusals          []ReasonCount  `json:"refusals"`
}

// DatabaseView is one configured database.
type DatabaseView struct {
	Name  string     `json:"name"`
	Pools []PoolView `json:"pools"`
	// Over the window, all of the database's pools together.
	Wait                  Percentiles `json:"wait"`
	Transaction           Percentiles `json:"transaction"`
	TransactionsPerSecond *float64    `json:"transactions_per_second"`
	BorrowTimeouts        ReasonCount `json:"borrow_timeouts"`
	// Topology; Hosts is empty for a database with one host (not
	// monitored).
	Hosts            []HostView `json:"hosts"`
	Failovers        *float64   `json:"failovers"`
	LastFailover     *time.Time `json:"last_failover"`
	NoPrimarySeconds *float64   `json:"no_primary_seconds"`
}

// PoolView is one (database, user) pool now.
type PoolView struct {
	User string `json:"user"`
	// Server connections.
	Active *float64 `json:"active"`
	Idle   *float64 `json:"idle"`
	Max    *float64 `json:"max"`
	// Clients.
	ClientsActive *float64 `json:"clients_active"`
	Waiting       *float64 `json:"waiting"`
}

// Percentiles of a histogram's observations within the window, in
// seconds.
type Percentiles struct {
	Count *float64 `json:"count"`
	P50   *float64 `json:"p50"`
	P95   *float64 `json:"p95"`
	P99   *float64 `json:"p99"`
}

// HostView is one monitored server.
type HostView struct {
	Host       string   `json:"host"`
	Role       string   `json:"role"` // primary, standby, fenced, unknown; "" when not reported
	Up         *bool    `json:"up"`
	LagSeconds *float64 `json:"lag_seconds"`
}

// ReasonCount is a counter by reason: Now for gauges (clients pinned
// now), LastWindow its increase over the window, Total since sluice
// started.
type ReasonCount struct {
	Reason     string   `json:"reason"`
	Now        *float64 `json:"now,omitempty"`
	LastWindow *float64 `json:"last_window"`
	Total      *float64 `json:"total"`
}

// Build turns snapshots, oldest first, into the view at the newest one:
// gauges from the newest, increases and percentiles from its difference
// with the base, the newest snapshot taken at least window before it
// (or the oldest kept, when none is that old). lastFailover holds, per
// database, when a snapshot first showed its failover count go up.
func Build(snaps []Snapshot, window time.Duration, lastFailover map[string]time.Time) View {
	if len(snaps) == 0 {
		return View{}
	}
	now := indexed(snaps[len(snaps)-1])
	var base *Snapshot
	if len(snaps) > 1 {
		b := 0
		for i := len(snaps) - 2; i >= 0; i-- {
			if now.At.Sub(snaps[i].At) >= window {
				b = i
				break
			}
		}
		s := indexed(snaps[b])
		base = &s
	}
	v := View{At: now.At, ClientConnections: sum(now, clientConnections, nil)}
	d := delta{now: now, base: base}
	if base != nil {
		v.WindowSeconds = now.At.Sub(base.At).Seconds()
	}
	for _, db := range databases(now) {
		v.Databases = append(v.Databases, buildDatabase(d, db, v.WindowSeconds, lastFailover))
	}
	v.Pins = byReason(d, pinsTotal, pinnedClients)
	v.Refusals = byReason(d, loginFailures, "")
	return v
}

func buildDatabase(d delta, db string, window float64, lastFailover map[string]time.Time) DatabaseView {
	in := map[string]string{"database": db}
	out := DatabaseView{Name: db,
		Wait:        d.percentiles(poolWait, in),
		Transaction: d.percentiles(transactionTime, in),
		BorrowTimeouts: ReasonCount{Reason: "borrow_timeout",
			Total: sum(d.now, borrowTimeouts, in), LastWindow: d.increase(borrowTimeouts, in)},
		Failovers:        sum(d.now, failovers, in),
		NoPrimarySeconds: sum(d.now, noPrimaryCurrent, in),
	}
	if out.NoPrimarySeconds == nil {
		out.NoPrimarySeconds = sum(d.now, noPrimaryOld, in)
	}
	if tx := d.increase(poolTransactions, in); tx != nil && window > 0 {
		rate := *tx / window
		out.TransactionsPerSecond = &rate
	}
	if t, ok := lastFailover[db]; ok {
		out.LastFailover = &t
	}
	for _, user := range labelValues(d.now, "user", in, serverConnections, waitingClients, poolMaxSize, poolActiveClients) {
		p := map[string]string{"database": db, "user": user}
		out.Pools = append(out.Pools, PoolView{User: user,
			Active:        sum(d.now, serverConnections, with(p, "state", "active")),
			Idle:          sum(d.now, serverConnections, with(p, "state", "idle")),
			Max:           sum(d.now, poolMaxSize, p),
			ClientsActive: sum(d.now, poolActiveClients, p),
			Waiting:       sum(d.now, waitingClients, p),
		})
	}
	for _, host := range labelValues(d.now, "host", in, serverRole, serverUp, replayLag) {
		h := with(in, "host", host)
		hv := HostView{Host: host, LagSeconds: sum(d.now, replayLag, h)}
		for _, s := range matching(d.now, serverRole, h) {
			if s.Value == 1 {
				hv.Role = s.Labels["role"]
			}
		}
		if up := sum(d.now, serverUp, h); up != nil {
			b := *up == 1
			hv.Up = &b
		}
		out.Hosts = append(out.Hosts, hv)
	}
	// The primary first, then standbys: the order an operator reads in.
	slices.SortStableFunc(out.Hosts, func(a, b HostView) int { return cmp.Compare(roleOrder(a.Role), roleOrder(b.Role)) })
	return out
}

func roleOrder(role string) int {
	switch role {
	case "primary":
		return 0
	case "standby":
		return 1
	}
	return 2
}

// byReason is counter's increase and total by reason, with gauge's value
// now when gauge is not "".
func byReason(d delta, counter, gauge string) []ReasonCount {
	names := []string{counter}
	if gauge != "" {
		names = append(names, gauge)
	}
	var out []ReasonCount
	for _, r := range labelValues(d.now, "reason", nil, names...) {
		in := map[string]string{"reason": r}
		rc := ReasonCount{Reason: r, Total: sum(d.now, counter, in), LastWindow: d.increase(counter, in)}
		if gauge != "" {
			rc.Now = sum(d.now, gauge, in)
		}
		out = append(out, rc)
	}
	return out
}

// delta compares the newest snapshot with the base (nil: none yet).
type delta struct {
	now  Snapshot
	base *Snapshot
}

// increase sums, over the series of name matching in, each one's
// increase since the base (a series that went down was reset, and its
// whole value counts). nil without a base or without such series.
func (d delta) increase(name string, in map[string]string) *float64 {
	if d.base == nil {
		return nil
	}
	series := matching(d.now, name, in)
	if len(series) == 0 {
		return nil
	}
	total := 0.0
	for _, s := range series {
		inc := s.Value
		if b := find(*d.base, name, s.Labels); b != nil && b.Value <= s.Value {
			inc -= b.Value
		}
		total += inc
	}
	return &total
}

// percentiles of histogram name's observations since the base, over the
// series matching in; Count is nil when there is no such histogram (or
// no base), and the percentiles nil too when nothing was observed.
func (d delta) percentiles(name string, in map[string]string) Percentiles {
	if d.base == nil {
		return Percentiles{}
	}
	series := matching(d.now, name, in)
	if len(series) == 0 {
		return Percentiles{}
	}
	var h histogram
	for _, s := range series {
		h.addDelta(s, find(*d.base, name, s.Labels))
	}
	count := h.total
	p := Percentiles{Count: &count}
	for q, dst := range map[float64]**float64{0.50: &p.P50, 0.95: &p.P95, 0.99: &p.P99} {
		if v, ok := h.quantile(q); ok {
			*dst = &v
		}
	}
	return p
}
