//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/peercancel"
	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// A rolling upgrade of one instance of a fleet is invisible to the
// fleet: the instance keeps its peer number, so a client that moved to
// the new process keeps a cancel key that reaches it through any other
// instance, after the old process exited too; SHOW PEERS shows it once,
// with that number.
//
// Instance "gap" starts first and leaves, so that number 1 is free when
// "up" (number 2) is upgraded: before the fix the new process could not
// register until the old one left (its record was taken for a
// duplicate's), then claimed the lowest free number, 1, and the moved
// client's key (naming 2) reached nobody.
func TestUpgradeInAFleetKeepsThePeerNumber(t *testing.T) {
	etcd := etcdtest.Start(t)
	bin := sluiceBinary(t)
	clusterSection := func(id string) string {
		return fmt.Sprintf("cluster:\n  etcd: {endpoints: [%q], dial_timeout: 2s}\n  instance_id: %s\n  prefix: /upgrade-fleet/\n  lease_ttl: 2s\n",
			etcd.Endpoint(), id)
	}
	start := func(id string) *upgradeProc {
		p := startSluice(t, sluiceOpts{bin: bin, extraConfig: clusterSection(id)})
		waitFor(t, id+" to hold a peer number", func() bool { return p.ownPeerID(t) != 0 })
		return p
	}
	gap := start("gap")
	up := start("up")
	other := start("other")
	gap.stop()
	waitFor(t, "other to see gap leave", func() bool { _, in := other.showPeers(t)["gap"]; return !in })
	number := up.ownPeerID(t)
	require.Equal(t, 2, number)

	moved := up.connect(t, pgtest.AppDB, "fleet-moved")
	pid := moved.PID()
	keyPeer, ok := peercancel.PeerOf(pid)
	require.True(t, ok)
	require.Equal(t, uint16(number), keyPeer, "the client's cancel key names the instance")
	up.upgrade() // returns once the old process has exited
	_, err := moved.Exec(context.Background(), "SELECT 1").ReadAll()
	require.NoError(t, err, "the client moved to the new process")

	waitFor(t, "the new process to hold a peer number", func() bool { return up.ownPeerID(t) != 0 })
	assert.Equal(t, number, up.ownPeerID(t), "the upgraded instance keeps its peer number")
	var seen []int
	waitFor(t, "other to see the upgraded instance registered by the new process", func() bool {
		seen = other.showPeers(t)["up"]
		return len(seen) > 0 && seen[0] == up.ownPeerID(t)
	})
	assert.Equal(t, []int{number}, seen, "SHOW PEERS on the other instance: the upgraded instance once, with its number")

	// The moved client's long query, cancelled through the other instance.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a guard against a hang
	defer cancel()
	cl := pgtest.Cluster(t)
	monitor, err := pgconn.Connect(ctx, cl.DSN("postgres", "", "postgres")+" host="+cl.SocketDir)
	require.NoError(t, err)
	defer monitor.Close(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := moved.Exec(ctx, "SELECT pg_sleep(30) /* fleet-moved */").ReadAll()
		done <- err
	}()
	waitFor(t, "the moved client's query to run", func() bool {
		res := monitor.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%fleet-moved */%' AND pid <> pg_backend_pid()", nil, nil, nil, nil).Read()
		require.NoError(t, res.Err)
		return string(res.Rows[0][0]) == "1"
	})
	require.NoError(t, sendCancel(ctx, other.port, pid, moved.SecretKey()))
	err = <-done
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "the query was not cancelled: %v", err)
	require.Equal(t, "57014", pgErr.Code)
}

// sendCancel sends a CancelRequest for (pid, secret) to the sluice on
// port and waits for it to close the connection (it has acted then).
func sendCancel(ctx context.Context, port int, pid uint32, secret []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	defer c.Close()
	pkt := binary.BigEndian.AppendUint32(nil, uint32(12+len(secret)))
	pkt = binary.BigEndian.AppendUint32(pkt, 80877102)
	pkt = binary.BigEndian.AppendUint32(pkt, pid)
	pkt = append(pkt, secret...)
	if _, err := c.Write(pkt); err != nil {
		return err
	}
	var b [1]byte
	c.Read(b[:]) // EOF once handled
	return nil
}

// showPeers runs SHOW PEERS on the instance's console: each instance id
// with the peer numbers of its rows.
func (p *upgradeProc) showPeers(t *testing.T) map[string][]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=sluice sslmode=disable",
		p.port, pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer c.Close(ctx)
	rs, err := c.Exec(ctx, "SHOW PEERS").ReadAll()
	require.NoError(t, err)
	idCol, instCol, selfCol := -1, -1, -1
	for i, fd := range rs[0].FieldDescriptions {
		switch fd.Name {
		case "peer_id":
			idCol = i
		case "instance_id":
			instCol = i
		case "self":
			selfCol = i
		}
	}
	require.True(t, idCol >= 0 && instCol >= 0 && selfCol >= 0)
	out := map[string][]int{}
	for _, r := range rs[0].Rows {
		n, err := strconv.Atoi(string(r[idCol]))
		require.NoError(t, err)
		out[string(r[instCol])] = append(out[string(r[instCol])], n)
	}
	return out
}

// ownPeerID is the peer number the serving process holds, as its own
// SHOW PEERS says (the row marked self; 0 while it is not registered).
func (p *upgradeProc) ownPeerID(t *testing.T) int {
	t.Helper()
	code, body := p.getAPI(t, "peers")
	require.Equal(t, 200, code, body)
	var peers []struct {
		PeerID int  `json:"peer_id"`
		Self   bool `json:"self"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &peers), body)
	for _, pr := range peers {
		if pr.Self {
			return pr.PeerID
		}
	}
	return 0
}
