package daemon

import "github.com/sluice-proxy/sluice/internal/config"

// descriptorsBesideClients estimates the descriptors sluice needs besides
// one per client: one per server connection at every pool's max_size, and
// a few dozen for listeners, the admin endpoint, log and config files.
func descriptorsBesideClients(cfg *config.Config) uint64 {
	n := uint64(64)
	for _, db := range cfg.Databases {
		n += uint64(max(db.Pool.MaxSize, 0)) * uint64(max(len(cfg.Users), 1))
	}
	return n
}
