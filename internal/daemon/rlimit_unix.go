//go:build unix

package daemon

import (
	"log/slog"
	"syscall"

	"github.com/sluice-proxy/sluice/internal/config"
)

// raiseOpenFilesLimit makes sure sluice may open as many descriptors as
// the hard limit allows (every client and server connection is one) and
// logs both limits, warning when max_client_connections does not fit.
//
// Go (1.19+) already raises the soft limit to the hard one when the
// process starts, and gives child processes the original soft limit back;
// then the limits are only logged. Only where that did not happen (the
// soft limit is still lower) is it raised here, and child processes then
// inherit the raised limit, which is harmless for what sluice starts
// (PostgreSQL for `sluice demo`).
func raiseOpenFilesLimit(cfg *config.Config, log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("could not read the open files limit", "error", err)
		return
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("could not raise the soft open files limit to the hard one", "soft", lim.Cur, "hard", lim.Max, "error", err)
		} else {
			lim = raised
		}
	}
	log.Info("open files limit", "soft", lim.Cur, "hard", lim.Max)
	need := uint64(cfg.Limits.MaxClientConnections) + descriptorsBesideClients(cfg)
	if uint64(lim.Cur) < need {
		log.Warn("the open files limit is lower than limits.max_client_connections needs: clients will be refused (accept: too many open files) before that limit; raise the hard limit (ulimit -Hn, LimitNOFILE in systemd)",
			"soft", lim.Cur, "max_client_connections", cfg.Limits.MaxClientConnections, "descriptors_needed", need)
	}
}
