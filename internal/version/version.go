// Package version holds sluice's version, set at build time with
// -ldflags "-X github.com/sluice-proxy/sluice/internal/version.Version=...",
// so that `sluice version`, the metrics (sluice_build_info) and anything
// else that reports it agree.
package version

// Version is "dev" unless the build set it.
var Version = "dev"
