package txpool

import "testing"

// The lease's ending decisions, without a server: a cancelled, lost or
// no longer qualifying connection is closed whatever else holds; an idle
// one goes back as it is; one left in a transaction or with session state
// is cleaned first.
func TestLeaseEndAction(t *testing.T) {
	for _, tc := range []struct {
		o                 Outcome
		cancelled, usable bool
		want              leaseAction
	}{
		{LeaseIdle, false, true, leaseRelease},
		{LeaseInTx, false, true, leaseCleanAndRelease},
		{LeaseDirty, false, true, leaseCleanAndRelease},
		{LeaseLost, false, true, leaseDiscard},
	} {
		if got := endAction(tc.o, tc.cancelled, tc.usable); got != tc.want {
			t.Errorf("endAction(%d, cancelled=%v, usable=%v) = %d, want %d", tc.o, tc.cancelled, tc.usable, got, tc.want)
		}
		for _, bad := range [][2]bool{{true, true}, {false, false}, {true, false}} {
			if got := endAction(tc.o, bad[0], bad[1]); got != leaseDiscard {
				t.Errorf("endAction(%d, cancelled=%v, usable=%v) = %d, want discard", tc.o, bad[0], bad[1], got)
			}
		}
	}
}

// A transaction-pooled client's state at its ReadyForQuery picks the
// clean-up: pinned state needs DISCARD ALL even outside a transaction;
// an open or failed transaction alone needs ROLLBACK.
func TestTxOutcome(t *testing.T) {
	for _, tc := range []struct {
		status byte
		pinned bool
		want   Outcome
	}{
		{'I', false, LeaseIdle},
		{'T', false, LeaseInTx},
		{'E', false, LeaseInTx},
		{'I', true, LeaseDirty},
		{'T', true, LeaseDirty},
		{'E', true, LeaseDirty},
	} {
		if got := txOutcome(tc.status, tc.pinned); got != tc.want {
			t.Errorf("txOutcome(%q, pinned=%v) = %d, want %d", tc.status, tc.pinned, got, tc.want)
		}
	}
}
