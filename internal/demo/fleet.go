package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-proxy/sluice/internal/cluster"
	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// FleetOptions tune `sluice demo --fleet`. The embedded timings mean
// what they mean for the failover demo; ContinueFor is spent once after
// the failover and once after a sluice is killed (then the demo also
// waits for 10 writes through the two left). Hold is not used: the fleet
// demo always exits after its summary.
type FleetOptions struct {
	FailoverOptions
	// Sluice is the binary started three times as `Sluice run --config
	// FILE` [this executable].
	Sluice string
}

// fleetPrefix is the etcd key prefix of the demo's fleet.
const fleetPrefix = "/sluice-demo/"

// fleet is what the fleet demo runs; stop ends every part of it.
type fleet struct {
	dir      string
	etcd     *child
	endpoint string // etcd's client address
	sluices  []*child
	addrs    []string // the sluices' listen addresses
	haproxy  *child
	lbAddr   string
	lbStats  string   // URL of HAProxy's statistics in CSV
	all      []*child // every child started, for stop and the summary
}

// stop stops every child still running, in reverse order of start.
func (f *fleet) stop() {
	for i := len(f.all) - 1; i >= 0; i-- {
		f.all[i].stop()
	}
}

// pids lists every child started as "name pid N", for the summary.
func (f *fleet) pids() string {
	var s []string
	for _, c := range f.all {
		s = append(s, fmt.Sprintf("%s pid %d", c.name, c.pid()))
	}
	return strings.Join(s, ", ")
}

// startSluices starts three sluices in front of the primary and
// standby, each with auto_promote and the cluster section naming the
// demo's etcd, and waits until each accepts connections.
func (f *fleet) startSluices(ctx context.Context, bin string, primary, standby *pgserver.Cluster, o FleetOptions) error {
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	for i := range 3 {
		id := fmt.Sprintf("sluice-%d", i+1)
		sock := filepath.Join(f.dir, id)
		if err := os.Mkdir(sock, 0o700); err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[2*i])
		cfg := fmt.Sprintf(`listen: {address: "%s", socket_dir: "%s"}
admin: {address: "127.0.0.1:%d"}
log: {format: json, level: info}
shutdown_timeout: 2s
users:
  - {name: %s, password: %s}
  - {name: %s, password: %s}
databases:
  %s:
    hosts: ["127.0.0.1:%d", "127.0.0.1:%d"]
    pool_mode: transaction
    health_check_interval: %s
    pool: {min_size: 1, max_size: 10, borrow_timeout: 60s}
    backend: {dial_timeout: 2s}
    failover: {user: %s, auto_promote: true, promote_after: %s}
cluster:
  etcd: {endpoints: ["%s"], dial_timeout: 1s}
  instance_id: %s
  prefix: %s
  lease_ttl: 2s
`, addr, sock, ports[2*i+1], demoUser, demoPassword, monitorUser, monitorPassword, demoDB,
			primary.Port, standby.Port, o.HealthCheck, monitorUser, o.PromoteAfter, f.endpoint, id, fleetPrefix)
		path := filepath.Join(f.dir, id+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return err
		}
		c, err := startChild(f.dir, id, bin, "run", "--config", path)
		if err != nil {
			return err
		}
		f.all = append(f.all, c)
		f.sluices = append(f.sluices, c)
		f.addrs = append(f.addrs, addr)
	}
	for i, c := range f.sluices {
		if err := c.waitUntil(ctx, "listening", time.Minute, func() bool { return portOpen(f.addrs[i]) }); err != nil {
			return err
		}
	}
	return nil
}

// readDecision reads the fleet's failover decision for the demo
// database (internal/cluster writes it); the zero value when there is
// none.
func readDecision(ctx context.Context, cli *clientv3.Client) (cluster.Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, fleetPrefix+"primary/"+demoDB)
	if err != nil || len(resp.Kvs) == 0 {
		return cluster.Decision{}, err
	}
	var d cluster.Decision
	err = json.Unmarshal(resp.Kvs[0].Value, &d)
	return d, err
}

// waitDecision polls etcd until the decision has epoch and is done,
// then returns it.
func waitDecision(ctx context.Context, cli *clientv3.Client, epoch uint64, timeout time.Duration) (cluster.Decision, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := readDecision(ctx, cli)
		if err == nil && d.Epoch >= epoch && d.Done {
			return d, nil
		}
		if time.Now().After(deadline) {
			return d, fmt.Errorf("demo: no completed decision with epoch %d in etcd after %s (last: %+v, %v)", epoch, timeout, d, err)
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// promotions counts the pg_promote calls the sluices logged (one line
// per call, successful or not).
func (f *fleet) promotions() (int, []string) {
	n := 0
	var by []string
	for _, c := range f.sluices {
		log := c.log()
		k := strings.Count(log, `"msg":"promoted a standby"`) + strings.Count(log, `"msg":"promoting a standby failed"`)
		if k > 0 {
			by = append(by, c.name)
		}
		n += k
	}
	return n, by
}

// sluiceByID returns the sluice named id, or the last one.
func (f *fleet) sluiceByID(id string) (*child, int) {
	for i, c := range f.sluices {
		if c.name == id {
			return c, i
		}
	}
	return f.sluices[len(f.sluices)-1], len(f.sluices) - 1
}

// errFleetFailed is returned when the fleet demo's checks fail.
var errFleetFailed = errors.New("demo: the fleet demo's checks failed")
