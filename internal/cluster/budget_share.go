package cluster

import "slices"

// The fleet's server budget, its pure core: what share of a database's
// max_db_connections each live instance should have, and how much of it
// an instance may acknowledge now without the fleet's acknowledged
// shares ever adding up to more than the budget.
//
// Each instance acknowledges its share in etcd (a key under its lease,
// budget.go) and never lets its pools hold more than the share it
// acknowledged. So the guarantee holds if the acknowledged shares never
// sum to more than the budget: an instance lowers its key only after its
// pools hold no more than the new value, and raises it only in a
// transaction that fails if any other key changed since it read them
// (Acknowledgeable computed the raise from those values). A newcomer's
// share is thus usable only once the others acknowledged smaller ones.

// TargetShare is the fair share of instance self among members (every
// live instance's id, self included, in any order): the budget divided
// evenly, the remainder going one each to the first instances in id
// order, so that every instance computes the same division from the
// same list. 0 when self is not a member.
func TargetShare(budget int, members []string, self string) int {
	ids := slices.Clone(members)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	rank := slices.Index(ids, self)
	if rank < 0 || budget <= 0 {
		return 0
	}
	share := budget / len(ids)
	if rank < budget%len(ids) {
		share++
	}
	return share
}

// Acknowledgeable is the largest share self may acknowledge now, given
// the shares acknowledged (by id, self's included) and its target: no
// more than its target, and no more than what the others leave of the
// budget. It may be below self's current acknowledged share (the others
// hold more than their targets until they shrink): self then keeps its
// own until it must shrink to its target.
func Acknowledgeable(budget int, acked map[string]int, self string, target int) int {
	others := 0
	for id, n := range acked {
		if id != self {
			others += max(n, 0)
		}
	}
	return max(0, min(target, budget-others))
}

// BudgetStep is what an instance does next for one database.
type BudgetStep struct {
	// Limit is what its pools may hold from now on (never more than
	// what is acknowledged in etcd).
	Limit int
	// Shrink: lower the acknowledged share to Write once the pools hold
	// no more than it. Grow: raise it to Write in a transaction
	// conditioned on the others' keys not having changed.
	Shrink, Grow bool
	Write        int
}

// NextBudgetStep decides the next step of self, whose acknowledged share
// is acked[self] (absent: none yet), among the live members.
func NextBudgetStep(budget int, members []string, acked map[string]int, self string) BudgetStep {
	cur, has := acked[self]
	target := TargetShare(budget, members, self)
	switch {
	case has && cur > target:
		return BudgetStep{Limit: target, Shrink: true, Write: target}
	case !has || cur < target:
		if v := Acknowledgeable(budget, acked, self, target); v > cur || !has {
			return BudgetStep{Limit: cur, Grow: true, Write: v}
		}
	}
	return BudgetStep{Limit: cur}
}
