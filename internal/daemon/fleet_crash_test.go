package daemon_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// TestCrashedInstanceLeavesWithItsLease: a sluice process killed with
// SIGKILL cannot revoke its lease; the others see it leave once the
// lease expires (lease_ttl), and its peer number is free again for the
// next instance to register.
func TestCrashedInstanceLeavesWithItsLease(t *testing.T) {
	etcd := etcdtest.Start(t)
	bin := filepath.Join(t.TempDir(), "sluice")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sluice").CombinedOutput()
	require.NoError(t, err, "%s", out)

	s1 := startFleetInstance(t, etcd.Endpoint(), "s1", false)
	eventually(t, "s1 to register", func() bool { return s1.d.Cluster.PeerID() == 1 })

	path := filepath.Join(t.TempDir(), "crash.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fleetConfig(t, freePort(t), etcd.Endpoint(), "crash", false, "2s")), 0o600))
	cmd := exec.Command(bin, "run", "--config", path)
	logs := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("the crashed process's log:\n%s", logs.String())
		}
	})

	eventually(t, "s1 to see the process join", func() bool {
		p, ok := peerIDs(s1.apiPeers(t))["crash"]
		return ok && p.PeerID == 2
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	<-done
	eventually(t, "s1 to see the crashed process leave when its lease expires", func() bool {
		_, ok := peerIDs(s1.apiPeers(t))["crash"]
		return !ok
	})
	s3 := startFleetInstance(t, etcd.Endpoint(), "s3", false)
	eventually(t, "s3 to take the freed peer number", func() bool { return s3.d.Cluster.PeerID() == 2 })
}
