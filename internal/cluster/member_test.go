package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/internal/backend/tlstest"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor polls cond until it holds; the bound is a guard against a
// hang, not an expectation.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func clusterConfig(endpoint string) config.Cluster {
	return config.Cluster{Etcd: config.Etcd{Endpoints: []string{endpoint}, DialTimeout: config.Duration(2 * time.Second)},
		Prefix: "/test/", LeaseTTL: config.Duration(2 * time.Second)}
}

type testMember struct {
	*Member
	log *syncbuf.Buffer
}

func startMember(t *testing.T, endpoint, id string, fp Fingerprint) testMember {
	t.Helper()
	return startMemberWith(t, Options{Config: clusterConfig(endpoint), InstanceID: id, Address: "127.0.0.1:" + fmt.Sprint(7000+len(id)),
		Databases: []string{"appdb"}, Fingerprint: fp})
}

// startMemberWith starts a member with opts, logging into its own
// buffer, and closes it when the test ends.
func startMemberWith(t *testing.T, opts Options) testMember {
	t.Helper()
	log := &syncbuf.Buffer{}
	opts.Log = slog.New(slog.NewTextHandler(log, nil))
	m, err := Start(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		m.Close(ctx)
	})
	return testMember{m, log}
}

func ids(ps []Peer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.InstanceID)
	}
	return out
}

func TestThreeMembersSeeEachOtherAndOneLeaves(t *testing.T) {
	etcd := etcdtest.Start(t)
	fp := Fingerprint{Databases: "d", Users: "u", Auth: "a"}
	ms := []testMember{startMember(t, etcd.Endpoint(), "a", fp), startMember(t, etcd.Endpoint(), "b", fp),
		startMember(t, etcd.Endpoint(), "c", Fingerprint{Databases: "other", Users: "u", Auth: "a"})}
	for _, m := range ms {
		waitFor(t, m.InstanceID()+" to see three members", func() bool { ok, _ := m.Healthy(); return ok && len(m.Peers()) == 3 })
		ok, reason := m.Healthy()
		require.True(t, ok, reason)
	}
	seen := map[uint16]bool{}
	for _, m := range ms {
		n := m.PeerID()
		require.True(t, n >= 1 && n <= 3, "peer id %d", n)
		require.False(t, seen[n], "peer id %d twice", n)
		seen[n] = true
		require.Len(t, m.Secret(), SecretSize)
		require.Equal(t, ms[0].Secret(), m.Secret(), "one fleet secret")
		addr, ok := ms[0].PeerAddress(n)
		require.True(t, ok)
		require.Equal(t, m.opts.Address, addr)
	}
	_, ok := ms[0].PeerAddress(0)
	require.False(t, ok)

	peers := ms[0].Peers()
	for _, p := range peers {
		require.Equal(t, p.InstanceID == "a", p.Self)
		require.Equal(t, p.InstanceID != "c", p.ConfigMatches, p.InstanceID)
	}
	waitFor(t, "a to log that c differs", func() bool { return strings.Contains(ms[0].log.String(), "instances=\"c (databases)\"") })
	waitFor(t, "c to log that a and b differ", func() bool {
		return strings.Contains(ms[2].log.String(), "instances=\"a (databases), b (databases)\"")
	})

	// c reloads to the fleet's config: the others see it match.
	ms[2].UpdateConfig([]string{"appdb"}, fp)
	waitFor(t, "c's new fingerprint to reach a", func() bool {
		for _, p := range ms[0].Peers() {
			if p.InstanceID == "c" {
				return p.ConfigMatches
			}
		}
		return false
	})
	waitFor(t, "a to log that the fleet matches again", func() bool {
		return strings.Contains(ms[0].log.String(), "configuration matches every instance of the fleet again")
	})

	// b leaves gracefully: its lease is revoked and the others see it go
	// at once (long before the TTL would have expired it).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, ms[1].Close(ctx))
	for _, m := range []testMember{ms[0], ms[2]} {
		waitFor(t, m.InstanceID()+" to see b leave", func() bool { return len(m.Peers()) == 2 })
		require.Equal(t, []string{"a", "c"}, sortedIDs(m.Peers()))
	}
}

func sortedIDs(ps []Peer) []string {
	out := ids(ps)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// etcd goes away for longer than the lease: the member reports it, drops
// its peer number when the lease is gone, and registers again when etcd
// is back, with the same number (nobody else took it).
func TestEtcdDownThenBackReregisters(t *testing.T) {
	etcd := etcdtest.Start(t)
	fp := Fingerprint{Databases: "d"}
	a, b := startMember(t, etcd.Endpoint(), "a", fp), startMember(t, etcd.Endpoint(), "b", fp)
	waitFor(t, "two members", func() bool { return len(a.Peers()) == 2 && len(b.Peers()) == 2 })
	idA := a.PeerID()

	etcd.Stop()
	waitFor(t, "a to report etcd down", func() bool { ok, _ := a.Healthy(); return !ok })
	_, reason := a.Healthy()
	require.Contains(t, reason, "etcd")
	waitFor(t, "a to lose its lease", func() bool { return a.PeerID() == 0 })

	etcd.Start()
	waitFor(t, "a to register again", func() bool { ok, _ := a.Healthy(); return ok && a.PeerID() != 0 })
	for _, m := range []testMember{a, b} {
		waitFor(t, m.InstanceID()+" registered and seeing both", func() bool {
			ok, _ := m.Healthy()
			return ok && m.PeerID() != 0 && len(m.Peers()) == 2
		})
	}
	require.Equal(t, idA, a.PeerID(), "the number held before is claimed again when free")
	require.NotEqual(t, a.PeerID(), b.PeerID())
}

// A malformed record under the members prefix (another version, or a
// hand-made key) is ignored and logged; the member keeps the others.
func TestMalformedRecordIsIgnored(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := startMember(t, etcd.Endpoint(), "a", Fingerprint{})
	waitFor(t, "a registered", func() bool { return len(a.Peers()) == 1 })
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Put(ctx, "/test/members/junk", "{not json")
	require.NoError(t, err)
	_, err = c.Put(ctx, "/test/members/zz", `{"instance_id":"zz","peer_id":9,"address":"h:1"}`)
	require.NoError(t, err)
	waitFor(t, "a to see zz", func() bool { return len(a.Peers()) == 2 })
	require.Contains(t, a.log.String(), "ignoring a member record in etcd")
	require.Equal(t, []string{"a", "zz"}, sortedIDs(a.Peers()))
}

// A member started while etcd is down serves on (nothing blocks) and
// registers once etcd is up.
func TestStartWhileEtcdDown(t *testing.T) {
	etcd := etcdtest.Start(t)
	etcd.Stop()
	a := startMember(t, etcd.Endpoint(), "a", Fingerprint{})
	waitFor(t, "a to say it is not registered", func() bool {
		_, reason := a.Healthy()
		return strings.Contains(reason, "not registered in etcd")
	})
	require.Zero(t, a.PeerID())
	require.Nil(t, a.Secret())
	require.Contains(t, a.log.String(), "cluster member degraded: sluice keeps serving its clients")
	etcd.Start()
	waitFor(t, "a to register", func() bool { ok, _ := a.Healthy(); return ok })
	require.Equal(t, uint16(1), a.PeerID())
	require.Len(t, a.Secret(), SecretSize)
}

// Two processes given the same instance_id: the second does not take
// over the first's record or peer number, and says why.
func TestDuplicateInstanceIDIsRefused(t *testing.T) {
	etcd := etcdtest.Start(t)
	first := startMember(t, etcd.Endpoint(), "same", Fingerprint{})
	waitFor(t, "first registered", func() bool { ok, _ := first.Healthy(); return ok })
	second := startMember(t, etcd.Endpoint(), "same", Fingerprint{})
	waitFor(t, "second to refuse", func() bool {
		_, reason := second.Healthy()
		return strings.Contains(reason, `instance_id "same" is already registered by another running instance`)
	})
	require.Zero(t, second.PeerID())
	require.Equal(t, uint16(1), first.PeerID())
	ok, _ := first.Healthy()
	require.True(t, ok)
	// When the first leaves, the second registers.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, first.Close(ctx))
	waitFor(t, "second to register", func() bool { ok, _ := second.Healthy(); return ok })
	require.Equal(t, uint16(1), second.PeerID())
}

// A record deleted by hand while the lease lives is written again.
func TestDeletedRecordIsWrittenAgain(t *testing.T) {
	etcd := etcdtest.Start(t)
	a := startMember(t, etcd.Endpoint(), "a", Fingerprint{})
	waitFor(t, "a registered", func() bool { return len(a.Peers()) == 1 })
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := c.Watch(ctx, "/test/members/a")
	_, err = c.Delete(ctx, "/test/members/a")
	require.NoError(t, err)
	for ev := range w {
		if len(ev.Events) > 0 && ev.Events[len(ev.Events)-1].Type == clientv3.EventTypePut {
			break // written again
		}
	}
	require.NoError(t, ctx.Err())
	waitFor(t, "a to see itself again", func() bool { return len(a.Peers()) == 1 })
}

// Over TLS with client certificates: a member with the fleet's CA and a
// client certificate registers; one trusting another CA does not, and
// says why.
func TestMemberOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "etcd")
	serverCert, serverKey := ca.Issue(t, dir, "etcd-server", "127.0.0.1")
	clientCert, clientKey := ca.Issue(t, dir, "sluice-client")
	etcd := etcdtest.StartTLS(t, &etcdtest.TLS{CertFile: serverCert, KeyFile: serverKey, ClientCAFile: ca.File, CAFile: ca.File})

	start := func(id, caFile string) testMember {
		cfg := clusterConfig(etcd.Endpoint())
		cfg.Etcd.CAFile, cfg.Etcd.CertFile, cfg.Etcd.KeyFile = caFile, clientCert, clientKey
		log := &syncbuf.Buffer{}
		m, err := Start(Options{Config: cfg, InstanceID: id, Address: "127.0.0.1:7001", Log: slog.New(slog.NewTextHandler(log, nil))})
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			m.Close(ctx)
		})
		return testMember{m, log}
	}
	good := start("good", ca.File)
	waitFor(t, "the member with the right CA to register", func() bool { ok, _ := good.Healthy(); return ok })
	require.Equal(t, uint16(1), good.PeerID())

	other := tlstest.NewCA(t, t.TempDir(), "other")
	bad := start("bad", other.File)
	waitFor(t, "the member trusting another CA to say it is not registered", func() bool {
		_, reason := bad.Healthy()
		return strings.Contains(reason, "not registered in etcd")
	})
	require.Zero(t, bad.PeerID())
	require.Len(t, good.Peers(), 1)

	_, err := Start(Options{Config: config.Cluster{Etcd: config.Etcd{Endpoints: []string{etcd.Endpoint()}, CAFile: filepath.Join(dir, "missing.pem")}}})
	require.ErrorContains(t, err, "cluster.etcd.ca_file")
}

// With etcd's authentication on, a member with the right user and
// password registers; one with a wrong password does not.
func TestMemberWithEtcdAuth(t *testing.T) {
	etcd := etcdtest.Start(t)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.UserAdd(ctx, "root", "root-secret")
	require.NoError(t, err)
	_, err = c.UserGrantRole(ctx, "root", "root")
	require.NoError(t, err)
	_, err = c.AuthEnable(ctx)
	require.NoError(t, err)
	c.Close()

	start := func(id, password string) testMember {
		cfg := clusterConfig(etcd.Endpoint())
		cfg.Etcd.Username, cfg.Etcd.Password = "root", password
		log := &syncbuf.Buffer{}
		m, err := Start(Options{Config: cfg, InstanceID: id, Address: "127.0.0.1:7001", Log: slog.New(slog.NewTextHandler(log, nil))})
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			m.Close(ctx)
		})
		return testMember{m, log}
	}
	good := start("good", "root-secret")
	waitFor(t, "the member with the right password to register", func() bool { ok, _ := good.Healthy(); return ok })
	bad := start("bad", "bad-pass-7x3")
	waitFor(t, "the member with a wrong password to say why", func() bool {
		_, reason := bad.Healthy()
		return strings.Contains(reason, "authentication failed")
	})
	require.Zero(t, bad.PeerID())
	require.NotContains(t, bad.log.String(), "bad-pass-7x3", "the password is never logged")
}
