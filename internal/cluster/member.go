// Package cluster makes a sluice one member of a fleet of instances
// coordinated through etcd: it registers the instance under a lease,
// claims a small peer number (PgBouncer's peer_id) that cancel keys can
// carry, reads the fleet's shared secret, and keeps a live view of the
// other members. Later parts (cancel forwarding, the promoter, the
// shared server budget) build on a *Member.
//
// The pure parts are values: Record and its parser (record.go), the
// Fingerprint of what must match across the fleet (fingerprint.go), the
// choice of a peer number (peerid.go). The I/O is one goroutine, run
// (run.go), started by Start and ended by Close; it owns the etcd client
// and the lease. Everything else reads the state it publishes, under
// mu or through atomics, so every method is safe for concurrent use.
//
// If etcd cannot be reached the instance keeps serving: the member says
// so (Healthy, the sluice_cluster_etcd_up metric) and keeps trying; a
// lease that expired meanwhile is replaced when etcd is back (a new
// registration, the same peer number when no other instance took it).
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/version"
)

// SecretSize is the length of the fleet secret.
const SecretSize = 32

// Options configure Start.
type Options struct {
	Config config.Cluster
	// InstanceID and Address are this instance's id and advertised
	// address, resolved by the caller (config.Cluster.InstanceIDFor and
	// AdvertiseFor, with the address actually bound).
	InstanceID string
	Address    string
	// Databases and Fingerprint describe the configuration in force;
	// UpdateConfig replaces them at reload.
	Databases   []string
	Fingerprint Fingerprint
	Log         *slog.Logger
	// Predecessor, in a process started by an upgrade, is the seat the
	// old process held (zero: none, or an old binary that did not say).
	// Its member record and peer number are this instance's to take
	// over: the first registration moves them to this process's lease,
	// so the instance keeps its number (and the cancel keys of the
	// clients that moved keep reaching it) instead of waiting for the
	// old process to leave and claiming whatever number is free then.
	Predecessor Seat
}

// Seat is a process's place in the fleet as an upgrade hands it on: the
// peer number it holds and its incarnation.
type Seat struct {
	PeerID      uint16
	Incarnation string
}

// Peer is one live member as this instance sees it.
type Peer struct {
	Record
	// ConfigMatches is whether its fingerprint equals this instance's;
	// ConfigDiffers names the parts that differ.
	ConfigMatches bool
	ConfigDiffers []string
	Self          bool
}

// Member is this instance's membership in the fleet.
type Member struct {
	opts    Options
	log     *slog.Logger
	tls     *tls.Config
	started time.Time
	keys    keys
	// incarnation tells this process apart from another one given the
	// same instance id (Record.Incarnation, the value of its peer
	// number's key).
	incarnation string

	peerID atomic.Uint32          // 0 while no number is held
	secret atomic.Pointer[[]byte] // nil until read
	up     atomic.Bool            // registered and etcd answering

	mu      sync.Mutex
	peers   map[string]Record // by instance id, from the watch (self included)
	own     Fingerprint
	dbs     []string
	reason  string // why not healthy, or what it is doing
	warned  bool   // the current outage has been logged
	lastMis string // the mismatch summary last logged
	// lastPeerID is the number the last registration held, claimed
	// again first by the next one.
	lastPeerID uint16

	refresh chan struct{} // UpdateConfig asks run to write the record again
	cancel  context.CancelFunc
	done    chan struct{} // closed when run has returned
}

// keys are the etcd keys under the prefix.
type keys struct {
	members, peerIDs, secret string
}

func keysFor(prefix string) keys {
	return keys{members: prefix + "members/", peerIDs: prefix + "peer_ids/", secret: prefix + "secret"}
}

// Start begins membership: it returns at once (etcd may be down) after
// starting the goroutine that connects, registers and watches. It fails
// only on a configuration it cannot use (unreadable TLS files). The
// caller must Close the member.
func Start(o Options) (*Member, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	tlsCfg, err := etcdTLS(o.Config.Etcd)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Member{
		opts: o, log: o.Log.With("component", "cluster", "instance_id", o.InstanceID), tls: tlsCfg,
		started: time.Now().UTC().Truncate(time.Second), keys: keysFor(o.Config.Prefix),
		peers: map[string]Record{}, own: o.Fingerprint, dbs: slices.Clone(o.Databases),
		reason: "connecting to etcd", refresh: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
		incarnation: newIncarnation(),
	}
	go m.run(ctx)
	return m, nil
}

func etcdTLS(e config.Etcd) (*tls.Config, error) {
	if !e.TLS() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.etcd.ca_file: no PEM certificate in %s", e.CAFile)
		}
	}
	if e.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.cert_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// InstanceID is this instance's id in the fleet.
func (m *Member) InstanceID() string { return m.opts.InstanceID }

// PeerID is the peer number this instance holds now, 0 while it holds
// none (not registered yet, or its lease was lost and not yet renewed).
// Cancel keys issued with a number stay valid while the instance holds
// it; see docs/operations.md for what a lost lease means for them.
func (m *Member) PeerID() uint16 { return uint16(m.peerID.Load()) }

// Secret is the fleet secret shared by every instance (SecretSize
// bytes), nil until it has been read from etcd. The caller must not
// modify it.
func (m *Member) Secret() []byte {
	if p := m.secret.Load(); p != nil {
		return *p
	}
	return nil
}

// PeerAddress is the advertised address of the live member holding peer
// number id.
func (m *Member) PeerAddress(id uint16) (addr string, ok bool) {
	if id == 0 {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.peers {
		if r.PeerID == id {
			return r.Address, true
		}
	}
	return "", false
}

// Peers lists the live members, this one included, by peer number.
func (m *Member) Peers() []Peer {
	m.mu.Lock()
	out := make([]Peer, 0, len(m.peers))
	for _, r := range m.peers {
		d := m.own.Differs(r.Fingerprint)
		r.Databases = slices.Clone(r.Databases)
		out = append(out, Peer{Record: r, ConfigMatches: len(d) == 0, ConfigDiffers: d, Self: r.InstanceID == m.opts.InstanceID})
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Peer) int {
		if a.PeerID != b.PeerID {
			return int(a.PeerID) - int(b.PeerID)
		}
		return compareStrings(a.InstanceID, b.InstanceID)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Seat is what this process hands to its successor at an upgrade: the
// peer number it holds now (0: none) and its incarnation.
func (m *Member) Seat() Seat {
	return Seat{PeerID: m.PeerID(), Incarnation: m.incarnation}
}

// Healthy reports whether the instance is registered and etcd answers;
// reason says why not, or, when healthy, what it holds.
func (m *Member) Healthy() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.up.Load(), m.reason
}

// UpdateConfig replaces the databases and fingerprint this instance
// registers (at reload); the record in etcd is rewritten and the
// comparison with the peers logged again if it changed.
func (m *Member) UpdateConfig(databases []string, fp Fingerprint) {
	m.mu.Lock()
	m.dbs, m.own = slices.Clone(databases), fp
	m.lastMis = "" // compare and log again, as at start
	m.mu.Unlock()
	select {
	case m.refresh <- struct{}{}:
	default: // a refresh is already pending
	}
	m.checkMismatch()
}

// Close leaves the fleet: it revokes the lease, so that the others see
// this instance leave at once, and stops the goroutine and the etcd
// client. ctx bounds the wait for the revoke; the goroutine has ended
// when Close returns, whatever ctx does.
func (m *Member) Close(ctx context.Context) error {
	m.cancel()
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		<-m.done // run bounds its revoke by dial_timeout
		return errors.New("cluster: leaving the fleet took longer than the shutdown allowed")
	}
}

// setState publishes up and reason, logging transitions: one warning
// per outage (the first reason), the rest at debug level.
func (m *Member) setState(up bool, reason string) {
	m.mu.Lock()
	was, wasReason, warned := m.up.Load(), m.reason, m.warned
	m.up.Store(up)
	m.reason = reason
	m.warned = !up
	m.mu.Unlock()
	switch {
	case up && !was:
		m.log.Info("cluster member registered", "state", reason)
	case !up && !warned:
		m.log.Warn("cluster member degraded: sluice keeps serving its clients", "reason", reason)
	case !up && reason != wasReason:
		m.log.Debug("cluster member not registered", "reason", reason)
	}
}

// checkMismatch logs the peers whose configuration differs from this
// instance's, when that list changed.
func (m *Member) checkMismatch() {
	m.mu.Lock()
	recs := make([]Record, 0, len(m.peers))
	for _, r := range m.peers {
		recs = append(recs, r)
	}
	s := mismatchSummary(m.own, recs, m.opts.InstanceID)
	was := m.lastMis
	m.lastMis = s
	m.mu.Unlock()
	switch {
	case s != was && s != "":
		m.log.Warn("configuration differs from other instances of the fleet (databases, users and auth must be the same everywhere)", "instances", s)
	case s == "" && was != "":
		m.log.Info("configuration matches every instance of the fleet again")
	}
}

// record is this instance's registration with peer number id.
func (m *Member) record(id uint16) Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Record{InstanceID: m.opts.InstanceID, PeerID: id, Address: m.opts.Address, Version: version.Version,
		Started: m.started, Databases: slices.Clone(m.dbs), Fingerprint: m.own, Incarnation: m.incarnation}
}

func newIncarnation() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// holder is the value of the peer number keys this process claims.
func (m *Member) holder() string { return m.opts.InstanceID + " " + m.incarnation }

// predecessorHolder is the value of the peer number key of the process
// this one took over from ("" when none).
func (m *Member) predecessorHolder() string {
	if m.opts.Predecessor.Incarnation == "" {
		return ""
	}
	return m.opts.InstanceID + " " + m.opts.Predecessor.Incarnation
}

// ownsHolder reports whether a peer number key's value is this
// process's, or its predecessor's (which it may take over).
func (m *Member) ownsHolder(v string) bool {
	return v == m.holder() || (v != "" && v == m.predecessorHolder())
}
