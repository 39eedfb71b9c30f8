package daemon

import (
	"context"
	"log/slog"
	"os"

	"github.com/sluice-proxy/sluice/internal/cluster"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/console"
	"github.com/sluice-proxy/sluice/internal/handoff"
	"github.com/sluice-proxy/sluice/internal/proxy"
)

// startCluster joins the fleet when cfg has a cluster section (nil
// member otherwise). It runs after the listener is up, so that the
// default instance id and advertised address carry the port actually
// bound. The member's metrics go on the proxy's registry. seat, in a
// process started by an upgrade, is the old process's place in the
// fleet (from its hello; zero when it had none or did not say), taken
// over so that the instance keeps its peer number.
func startCluster(cfg *config.Config, srv *proxy.Server, log *slog.Logger, seat handoff.FleetSeat) (*cluster.Member, error) {
	if !cfg.Cluster.Enabled() {
		return nil, nil
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	bound := srv.Addr().String()
	m, err := cluster.Start(cluster.Options{
		Config:      cfg.Cluster,
		InstanceID:  cfg.Cluster.InstanceIDFor(host, bound),
		Address:     cfg.Cluster.AdvertiseFor(host, bound),
		Databases:   cluster.DatabaseNames(cfg),
		Fingerprint: cluster.FingerprintOf(cfg),
		Log:         log,
		Predecessor: cluster.Seat{PeerID: seat.PeerID, Incarnation: seat.Incarnation},
	})
	if err != nil {
		return nil, err
	}
	srv.Metrics().Registry.MustRegister(m.Collectors()...)
	// Cancel keys name this instance from now on, and cancels for other
	// instances' keys are forwarded to them (proxy/peer_cancel.go).
	srv.SetCancelPeers(m)
	return m, nil
}

// fleetSeat is what this process tells its successor of its place in
// the fleet (zero outside one, or while it holds no peer number).
func (d *Daemon) fleetSeat() handoff.FleetSeat {
	if d.Cluster == nil {
		return handoff.FleetSeat{}
	}
	s := d.Cluster.Seat()
	if s.PeerID == 0 {
		return handoff.FleetSeat{}
	}
	return handoff.FleetSeat{PeerID: s.PeerID, Incarnation: s.Incarnation}
}

// peersView converts the member's view for SHOW PEERS and /api/peers.
func peersView(m *cluster.Member) []console.Peer {
	ps := m.Peers()
	out := make([]console.Peer, len(ps))
	for i, p := range ps {
		out[i] = console.Peer{PeerID: int(p.PeerID), InstanceID: p.InstanceID, Address: p.Address, Version: p.Version,
			Started: p.Started, Databases: p.Databases, ConfigMatches: p.ConfigMatches,
			ConfigDiffers: append([]string{}, p.ConfigDiffers...), Self: p.Self}
	}
	return out
}

// fleetHealth is the member's standing for /readyz.
func fleetHealth(m *cluster.Member, p *cluster.Promoter) *console.FleetHealth {
	up, reason := m.Healthy()
	if blocked := failoverBlocked(p); blocked != "" {
		if up {
			reason = blocked
		} else {
			reason += "; " + blocked
		}
		up = false
	}
	return &console.FleetHealth{InstanceID: m.InstanceID(), PeerID: int(m.PeerID()), EtcdUp: up, Reason: reason}
}

// leaveFleet revokes the member's lease, after the clients are gone
// (peers may forward cancels for them until then); etcd's dial_timeout
// bounds it.
func (d *Daemon) leaveFleet() {
	if d.Cluster == nil {
		return
	}
	if d.Promoter != nil {
		d.Promoter.Close() // resigns at once: another instance leads from now on
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.leaveTimeout)
	defer cancel()
	if err := d.Cluster.Close(ctx); err != nil {
		d.Log.Warn("leaving the fleet", "error", err)
	} else {
		d.Log.Info("left the fleet", "instance_id", d.Cluster.InstanceID())
	}
}
