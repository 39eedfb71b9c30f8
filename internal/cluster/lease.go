package cluster

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sluice-proxy/sluice/internal/config"
)

// leased is a lease of cluster.lease_ttl kept alive by a session (the
// membership, each election and the budget hold one each). The
// session's context is not the caller's, so that revoke can still reach
// etcd once the caller's context has ended. The goroutine that granted
// it owns it and must call revoke.
type leased struct {
	*concurrency.Session
	client  *clientv3.Client
	id      clientv3.LeaseID
	stop    context.CancelFunc
	timeout time.Duration // each request's bound: etcd.dial_timeout
}

// grantLeased grants a lease and starts keeping it alive; what names it
// in errors. A lease whose keep-alive could not start is left to expire.
func grantLeased(ctx context.Context, client *clientv3.Client, c config.Cluster, what string) (*leased, error) {
	ttl := int64(c.LeaseTTL.D() / time.Second)
	timeout := c.Etcd.DialTimeout.D()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	grant, err := client.Grant(rctx, ttl)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("granting %s: %w", what, err)
	}
	sctx, stop := context.WithCancel(context.Background())
	sess, err := concurrency.NewSession(client, concurrency.WithLease(grant.ID), concurrency.WithTTL(int(ttl)), concurrency.WithContext(sctx))
	if err != nil {
		stop()
		return nil, fmt.Errorf("keeping %s alive: %w", what, err)
	}
	return &leased{Session: sess, client: client, id: grant.ID, stop: stop, timeout: timeout}, nil
}

// revoke stops keeping the lease alive and drops it, so that its keys
// go at once (a lease etcd already dropped makes the revoke fail,
// harmlessly). Orphan may have been called before.
func (l *leased) revoke() {
	l.Orphan()
	rctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	l.client.Revoke(rctx, l.id)
	cancel()
	l.stop()
}
