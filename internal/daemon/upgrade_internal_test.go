package daemon

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The new process is told its hand-off descriptor and not the old one's
// watchdog pid (it takes the watchdog over: systemd learns its pid from
// MAINPID); a stale descriptor variable is replaced.
func TestChildEnv(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "WATCHDOG_PID=42", "WATCHDOG_USEC=30000000", "SLUICE_HANDOFF_FD=9", "NOTIFY_SOCKET=/run/n"})
	require.Equal(t, []string{"PATH=/bin", "WATCHDOG_USEC=30000000", "NOTIFY_SOCKET=/run/n", "SLUICE_HANDOFF_FD=3"}, got)
}
