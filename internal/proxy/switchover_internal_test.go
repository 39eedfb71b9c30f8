package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/topology"
)

// Without a host SWITCHOVER promotes the reachable standby that has
// replayed the most; a named host must be a reachable standby.
func TestSwitchoverTarget(t *testing.T) {
	host := func(name string, role topology.Role, reachable bool, replay topology.LSN) topology.HostState {
		h := topology.HostState{Host: topology.Host{Name: name}, Role: role, Reachable: reachable}
		h.ReplayLSN = replay
		return h
	}
	snap := topology.Snapshot{Primary: "p", Hosts: []topology.HostState{
		host("p", topology.RolePrimary, true, 0),
		host("behind", topology.RoleStandby, true, 10),
		host("ahead", topology.RoleStandby, true, 20),
		host("down", topology.RoleStandby, false, 30),
	}}
	got, err := switchoverTarget(snap, "")
	require.NoError(t, err)
	require.Equal(t, "ahead", got.Name)
	got, err = switchoverTarget(snap, "behind")
	require.NoError(t, err)
	require.Equal(t, "behind", got.Name)
	_, err = switchoverTarget(snap, "down")
	require.ErrorContains(t, err, "down is not a reachable standby")
	_, err = switchoverTarget(snap, "p")
	require.ErrorContains(t, err, "p is not a reachable standby")
	_, err = switchoverTarget(snap, "nope")
	require.ErrorContains(t, err, "no host nope")
	_, err = switchoverTarget(topology.Snapshot{Hosts: snap.Hosts[:1]}, "")
	require.EqualError(t, err, "no reachable standby to promote")
}
