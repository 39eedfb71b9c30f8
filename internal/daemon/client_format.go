package daemon

import (
	"strconv"

	"github.com/sluice-proxy/sluice/internal/proxy"
)

// testClientFormat is TEST-ONLY: release builds never set it. A test
// builds a second binary with
//
//	-ldflags "-X github.com/sluice-proxy/sluice/internal/daemon.testClientFormat=99"
//
// so that it advertises another client-state format in the hand-off
// hello: an upgrade between it and a normal build is an incompatible
// pair, which must fall back to a drain (cmd/sluice's
// TestUpgradeToAnIncompatibleFormatDrains). There is no other way to get
// a second real format without a second version of the code.
var testClientFormat string

// advertisedClientFormat is the client-state format this process names
// in its hello and compares the peer's with: proxy.ClientStateFormat,
// unless a test build overrode it (testClientFormat).
func advertisedClientFormat() uint32 {
	if testClientFormat != "" {
		if n, err := strconv.ParseUint(testClientFormat, 10, 32); err == nil {
			return uint32(n)
		}
	}
	return proxy.ClientStateFormat
}
