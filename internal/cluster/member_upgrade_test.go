package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
)

// startSuccessor starts the member of a process started by an upgrade
// of the one whose seat is given (same instance id and address).
func startSuccessor(t *testing.T, endpoint, id, addr string, seat Seat) testMember {
	t.Helper()
	return startMemberWith(t, Options{Config: clusterConfig(endpoint), InstanceID: id, Address: addr,
		Databases: []string{"appdb"}, Fingerprint: Fingerprint{Databases: "d"}, Predecessor: seat})
}

// An upgraded process takes over its predecessor's seat while the
// predecessor still lives (it drains): the same peer number, at once,
// and the predecessor leaving (revoking its lease) takes nothing away.
// Before, the successor was refused as a duplicate until the old process
// left, then claimed the lowest free number (here 1, not 2).
func TestSuccessorTakesOverThePredecessorsPeerNumber(t *testing.T) {
	etcd := etcdtest.Start(t)
	fp := Fingerprint{Databases: "d"}
	gap := startMember(t, etcd.Endpoint(), "gap", fp)
	waitFor(t, "gap to register", func() bool { return gap.PeerID() != 0 })
	old := startMember(t, etcd.Endpoint(), "up", fp)
	waitFor(t, "up to register", func() bool { return old.PeerID() != 0 })
	other := startMember(t, etcd.Endpoint(), "other", fp)
	waitFor(t, "other to register", func() bool { return other.PeerID() != 0 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, gap.Close(ctx)) // number 1 is free from now on
	seat := old.Seat()
	require.Equal(t, uint16(2), seat.PeerID)

	next := startSuccessor(t, etcd.Endpoint(), "up", old.opts.Address, seat)
	waitFor(t, "the successor to register while its predecessor lives", func() bool { return next.PeerID() != 0 })
	require.Equal(t, seat.PeerID, next.PeerID(), "the same peer number")
	require.Contains(t, next.log.String(), "took over the peer number of the process this one upgraded")

	require.NoError(t, old.Close(ctx)) // revokes the predecessor's lease
	waitFor(t, "other to see the successor's record", func() bool {
		for _, p := range other.Peers() {
			if p.InstanceID == "up" {
				return p.Incarnation == next.incarnation
			}
		}
		return false
	})
	addr, ok := other.PeerAddress(seat.PeerID)
	require.True(t, ok, "the number still names a live instance once the predecessor left")
	require.Equal(t, old.opts.Address, addr)
	ps := other.Peers()
	require.Len(t, ps, 2)
	healthy, reason := next.Healthy()
	require.True(t, healthy, reason)
	require.Equal(t, seat.PeerID, next.PeerID())
}

// A seat that is not the live record's incarnation gives no right over
// it: a second process with the same instance id is still refused.
func TestSuccessorOfAnotherIncarnationIsStillADuplicate(t *testing.T) {
	etcd := etcdtest.Start(t)
	live := startMember(t, etcd.Endpoint(), "dup", Fingerprint{Databases: "d"})
	waitFor(t, "dup to register", func() bool { return live.PeerID() != 0 })
	impostor := startSuccessor(t, etcd.Endpoint(), "dup", "127.0.0.1:1", Seat{PeerID: live.PeerID(), Incarnation: "0000000000000000"})
	waitFor(t, "the impostor to be refused", func() bool {
		_, reason := impostor.Healthy()
		return strings.Contains(reason, "already registered by another running instance")
	})
	require.Zero(t, impostor.PeerID())
}
