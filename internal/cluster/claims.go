package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The claims one registration makes in etcd, each in a transaction, run
// by the member's goroutine (run.go).

// loadSecret reads the fleet secret, creating it if no instance has
// yet: a random value put only if the key does not exist, so every
// instance ends up with the first one written. It is not under a lease:
// the secret outlives any instance.
func (m *Member) loadSecret(ctx context.Context, client *clientv3.Client) error {
	fresh := make([]byte, SecretSize)
	rand.Read(fresh)
	rctx, cancel := m.request(ctx)
	defer cancel()
	resp, err := client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(m.keys.secret), "=", 0)).
		Then(clientv3.OpPut(m.keys.secret, hex.EncodeToString(fresh))).
		Else(clientv3.OpGet(m.keys.secret)).
		Commit()
	if err != nil {
		return fmt.Errorf("reading the fleet secret: %w", err)
	}
	secret := fresh
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) != 1 {
			return errors.New("reading the fleet secret: the key vanished")
		}
		secret, err = hex.DecodeString(string(kvs[0].Value))
		if err != nil || len(secret) != SecretSize {
			return fmt.Errorf("the fleet secret at %s is not %d bytes in hex: fix or delete the key (every instance must then restart)", m.keys.secret, SecretSize)
		}
	} else {
		m.log.Info("created the fleet secret", "key", m.keys.secret)
	}
	if old := m.Secret(); old != nil && string(old) != string(secret) {
		m.log.Error("the fleet secret changed in etcd; keeping the one read first (restart every instance to use the new one)", "key", m.keys.secret)
		return nil
	}
	m.secret.Store(&secret)
	return nil
}

// checkDuplicate refuses to register over the live record of another
// process with the same instance id (a configuration mistake: two
// instances would replace each other's record). The record of an
// earlier registration of this process is not another process. It
// returns the record's mod revision (0: none), on which the put of the
// new record is conditioned, so that two such processes starting at
// once cannot both pass.
func (m *Member) checkDuplicate(ctx context.Context, client *clientv3.Client) (int64, error) {
	rctx, cancel := m.request(ctx)
	resp, err := client.Get(rctx, m.keys.members+m.opts.InstanceID)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("reading the members: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	kv := resp.Kvs[0]
	r, err := decodeRecord(m.opts.InstanceID, kv.Value)
	if err != nil || r.Incarnation == m.incarnation || kv.Lease == 0 {
		return kv.ModRevision, nil // unreadable or not under a lease: no live instance owns it
	}
	if p := m.opts.Predecessor; p.Incarnation != "" && r.Incarnation == p.Incarnation {
		return kv.ModRevision, nil // the process this one took over from: its record is ours to replace
	}
	return 0, fmt.Errorf("instance_id %q is already registered by another running instance (address %s, started %s): give each instance its own cluster.instance_id",
		m.opts.InstanceID, r.Address, r.Started.Format(time.RFC3339))
}

// putRecord writes this instance's record under lease, if the key is
// still at revision rev (0: absent).
func (m *Member) putRecord(ctx context.Context, client *clientv3.Client, lease clientv3.LeaseID, id uint16, rev int64) error {
	key := m.keys.members + m.opts.InstanceID
	rctx, cancel := m.request(ctx)
	defer cancel()
	resp, err := client.Txn(rctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, m.recordValue(id), clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("registering: another process wrote the record of instance_id %q meanwhile", m.opts.InstanceID)
	}
	return nil
}

// claimPeerIDAttempts bounds the candidates tried in one registration;
// each failed attempt means another instance claimed that number first.
const claimPeerIDAttempts = 64

// claimPeerID takes the lowest free peer number (or the one this
// instance held before), in a transaction conditioned on the key not
// existing or being held by this instance, attached to lease.
func (m *Member) claimPeerID(ctx context.Context, client *clientv3.Client, lease clientv3.LeaseID) (uint16, error) {
	rctx, cancel := m.request(ctx)
	resp, err := client.Get(rctx, m.keys.peerIDs, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return 0, fmt.Errorf("reading the peer numbers: %w", err)
	}
	taken := map[uint16]string{}
	for _, kv := range resp.Kvs {
		if n, ok := parsePeerIDKey(string(kv.Key), m.keys.peerIDs); ok {
			taken[n] = string(kv.Value)
		}
	}
	self := m.holder()
	m.mu.Lock()
	prefer := m.lastPeerID
	m.mu.Unlock()
	if prefer == 0 {
		prefer = m.opts.Predecessor.PeerID // the old process's number, after an upgrade
	}
	for _, n := range peerIDCandidates(taken, m.ownsHolder, prefer, claimPeerIDAttempts) {
		key := fmt.Sprintf("%s%d", m.keys.peerIDs, n)
		rctx, cancel := m.request(ctx)
		r, err := client.Txn(rctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, self, clientv3.WithLease(lease))).
			Commit()
		if held := taken[n]; err == nil && !r.Succeeded && m.ownsHolder(held) {
			// Ours from a registration whose lease has not expired yet,
			// or the predecessor's after an upgrade (its lease lives
			// until it exits): move it to the new lease if it is still
			// held so.
			r, err = client.Txn(rctx).
				If(clientv3.Compare(clientv3.Value(key), "=", held)).
				Then(clientv3.OpPut(key, self, clientv3.WithLease(lease))).
				Commit()
			if err == nil && r.Succeeded && held != self {
				m.log.Info("took over the peer number of the process this one upgraded", "peer_id", n)
			}
		}
		cancel()
		if err != nil {
			return 0, fmt.Errorf("claiming peer number %d: %w", n, err)
		}
		if r.Succeeded {
			if prefer != 0 && n != prefer {
				m.log.Warn("the peer number held before was taken by another instance; cancel keys issued with it no longer reach this instance", "old_peer_id", prefer, "peer_id", n)
			}
			m.mu.Lock()
			m.lastPeerID = n
			m.mu.Unlock()
			return n, nil
		}
	}
	return 0, fmt.Errorf("no free peer number among the first %d tried (1..%d)", claimPeerIDAttempts, MaxPeerID)
}
