//go:build !unix

package daemon

import (
	"log/slog"

	"github.com/sluice-proxy/sluice/internal/config"
)

// raiseOpenFilesLimit does nothing where there is no RLIMIT_NOFILE.
func raiseOpenFilesLimit(*config.Config, *slog.Logger) {}
