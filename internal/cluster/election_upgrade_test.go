package cluster

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
)

// The leader of a database's failover is upgraded: the new process
// (same instance id, its own election session) campaigns behind the old
// one and may not write while the old one leads; the old one leads
// until it exits (its promoter closes after its clients are gone), then
// resigns, and exactly one instance (the other, or the new process)
// carries on from the decision as it was: one epoch after the other,
// never two writers. This is the behaviour before the fleet seat too
// (elections are per process, not per instance); the test keeps it.
func TestElectionLeaderUpgradedResignsOnce(t *testing.T) {
	etcd := etcdtest.Start(t)
	old, other := startMember(t, etcd.Endpoint(), "up", Fingerprint{}), startMember(t, etcd.Endpoint(), "other", Fingerprint{})
	pOld := NewPromoter(old.Member)
	eOld := pOld.Database("appdb")
	waitFor(t, "up to lead", eOld.Leading)
	pOther := NewPromoter(other.Member)
	defer pOther.Close()
	eOther := pOther.Database("appdb")
	ctx := context.Background()
	require.NoError(t, eOld.Write(ctx, Decision{Epoch: 1, Primary: "p:5432", Timeline: 1, Done: true}))

	waitFor(t, "up to register", func() bool { return old.PeerID() != 0 })
	next := startSuccessor(t, etcd.Endpoint(), "up", old.opts.Address, old.Seat())
	pNext := NewPromoter(next.Member)
	defer pNext.Close()
	eNext := pNext.Database("appdb")
	for _, e := range []*Election{eOther, eNext} {
		waitFor(t, "the others to campaign and read the decision", func() bool {
			ok, _ := e.Available()
			d, have := e.Decision()
			return ok && have && d.Epoch == 1 && e.Status().Holder == "up"
		})
		require.False(t, e.Leading())
		require.ErrorIs(t, e.Write(ctx, Decision{Epoch: 2, Primary: "s:5432"}), errNotLeader)
	}

	pOld.Close() // the old process exits: it resigns
	var leader, follower *Election
	waitFor(t, "one instance to lead after the old process", func() bool {
		switch {
		case eOther.Leading():
			leader, follower = eOther, eNext
		case eNext.Leading():
			leader, follower = eNext, eOther
		}
		return leader != nil
	})
	require.NoError(t, leader.Write(ctx, Decision{Epoch: 2, Primary: "s:5432"}), "the leader carries on from epoch 1")
	require.Error(t, follower.Write(ctx, Decision{Epoch: 2, Primary: "s:5432", Done: true}), "one writer")
	waitFor(t, "the follower to see epoch 2", func() bool { d, _ := follower.Decision(); return d.Epoch == 2 && !d.Done })
}
