package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Retry pacing after a failed registration: from minRetry, doubling, up
// to maxRetry (or the lease TTL, when shorter).
const (
	minRetry = 200 * time.Millisecond
	maxRetry = 5 * time.Second
)

// keepAliveTime is how often an idle connection to etcd is pinged: gRPC
// allows no less than 10 s, etcd's server no less than 5 s.
const keepAliveTime = 10 * time.Second

// errLeaseLost ends a registration whose lease etcd no longer renews.
var errLeaseLost = errors.New("the lease expired (etcd was unreachable for longer than cluster.lease_ttl)")

// run is the member's goroutine: it owns the etcd client and every
// registration, one after the other, until ctx ends; then it revokes the
// lease of the registration in force and closes the client.
func (m *Member) run(ctx context.Context) {
	defer close(m.done)
	var client *clientv3.Client
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	wait := minRetry
	for ctx.Err() == nil {
		var err error
		if client == nil {
			client, err = m.dial()
		}
		if err == nil {
			err = m.register(ctx, client)
			if ctx.Err() != nil {
				return
			}
			if m.peerID.Load() != 0 { // it was registered: start the pacing again
				wait = minRetry
			}
			if errors.Is(err, errLeaseLost) {
				wait = 0 // re-register at once; the new lease waits for etcd anyway
			}
		}
		m.peerID.Store(0)
		m.setState(false, "not registered in etcd: "+err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = nextRetry(wait, m.opts.Config.LeaseTTL.D())
	}
}

// nextRetry is the wait after prev: doubled, at least minRetry, at most
// maxRetry and half the lease TTL (a member that was registered should
// be back before its peers forget it).
func nextRetry(prev, leaseTTL time.Duration) time.Duration {
	return max(min(prev*2, maxRetry, leaseTTL/2), minRetry)
}

// dial creates the etcd client. It does not wait for a connection: the
// first request does (bounded by dial_timeout).
func (m *Member) dial() (*clientv3.Client, error) {
	e := m.opts.Config.Etcd
	return clientv3.New(clientv3.Config{
		Endpoints:            e.Endpoints,
		DialTimeout:          e.DialTimeout.D(),
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: e.DialTimeout.D(),
		TLS:                  m.tls,
		Username:             e.Username,
		Password:             e.Password,
		Logger:               zap.NewNop(), // problems reach the log through Healthy's reasons
	})
}

// request is a context for one etcd request, bounded by dial_timeout.
func (m *Member) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.opts.Config.Etcd.DialTimeout.D())
}

// register makes one registration: a lease, the secret, a peer number,
// the member record, and the watch of the members, until the lease is
// lost, the watch fails or ctx ends (then it revokes the lease). It
// returns why it ended.
func (m *Member) register(ctx context.Context, client *clientv3.Client) error {
	rev, err := m.checkDuplicate(ctx, client)
	if err != nil {
		return err
	}
	sess, err := grantLeased(ctx, client, m.opts.Config, "a lease")
	if err != nil {
		return err
	}
	// Revoke whatever the reason: when leaving, so that the others see
	// it at once; otherwise so that no key of this registration lingers
	// until its TTL (the next one claims them again).
	defer sess.revoke()
	if err := m.loadSecret(ctx, client); err != nil {
		return err
	}
	id, err := m.claimPeerID(ctx, client, sess.id)
	if err != nil {
		return err
	}
	if err := m.putRecord(ctx, client, sess.id, id, rev); err != nil {
		return err
	}
	m.peerID.Store(uint32(id))
	return m.watch(ctx, client, sess.Session, id)
}

func (m *Member) recordValue(id uint16) string {
	r := m.record(id)
	return r.encode()
}

// watch loads the members, then follows their changes until the lease
// is lost, the watch ends or ctx ends. It probes etcd every third of
// the lease TTL, so that an unreachable etcd is reported before the
// lease runs out.
func (m *Member) watch(ctx context.Context, client *clientv3.Client, sess *concurrency.Session, id uint16) error {
	rctx, cancel := m.request(ctx)
	resp, err := client.Get(rctx, m.keys.members, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return fmt.Errorf("reading the members: %w", err)
	}
	view := map[string]Record{}
	for _, kv := range resp.Kvs {
		m.apply(view, false, string(kv.Key), kv.Value)
	}
	m.setState(true, fmt.Sprintf("registered as peer %d", id)) // before the view: whoever sees it sees a registered member
	m.publish(view)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events := client.Watch(wctx, m.keys.members, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))

	probe := time.NewTicker(max(m.opts.Config.LeaseTTL.D()/3, 500*time.Millisecond))
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			m.peerID.Store(0) // at once: the revoke on the way out may wait for etcd
			return errLeaseLost
		case wr, ok := <-events:
			if !ok {
				return errors.New("the watch of the members ended")
			}
			if wr.Canceled {
				return fmt.Errorf("watching the members: %w", wr.Err())
			}
			for _, ev := range wr.Events {
				m.apply(view, ev.Type == clientv3.EventTypeDelete, string(ev.Kv.Key), ev.Kv.Value)
			}
			m.publish(view)
			if _, registered := view[m.opts.InstanceID]; !registered {
				// Someone deleted this instance's record (the lease is
				// still alive, else sess.Done would have fired): write it
				// again.
				select {
				case m.refresh <- struct{}{}:
				default:
				}
			}
		case <-m.refresh:
			rctx, cancel := m.request(ctx)
			_, err := client.Put(rctx, m.keys.members+m.opts.InstanceID, m.recordValue(id), clientv3.WithLease(sess.Lease()))
			cancel()
			if err != nil {
				m.log.Warn("could not update this instance's record in etcd; will retry", "error", err)
				select {
				case m.refresh <- struct{}{}:
				default:
				}
			}
		case <-probe.C:
			rctx, cancel := m.request(ctx)
			_, err := client.Get(rctx, m.keys.secret, clientv3.WithCountOnly())
			cancel()
			if err != nil && ctx.Err() == nil {
				m.setState(false, "etcd unreachable: "+err.Error()+" (still registered as peer "+fmt.Sprint(id)+" until the lease expires)")
			} else if err == nil {
				m.setState(true, fmt.Sprintf("registered as peer %d", id))
			}
		}
	}
}

// apply applies one member key's change to view. A record that does not
// parse is logged and left out: one bad value must not stop this
// instance from seeing the rest.
func (m *Member) apply(view map[string]Record, deleted bool, key string, value []byte) {
	id, ok := strings.CutPrefix(key, m.keys.members)
	if !ok || id == "" || strings.Contains(id, "/") {
		return
	}
	if deleted {
		delete(view, id)
		return
	}
	r, err := decodeRecord(id, value)
	if err != nil {
		m.log.Warn("ignoring a member record in etcd", "key", clip(key), "error", err)
		delete(view, id)
		return
	}
	view[id] = r
}

// publish makes view the member's view and compares fingerprints.
func (m *Member) publish(view map[string]Record) {
	cp := make(map[string]Record, len(view))
	for k, v := range view {
		cp[k] = v
	}
	m.mu.Lock()
	m.peers = cp
	m.mu.Unlock()
	m.checkMismatch()
}
