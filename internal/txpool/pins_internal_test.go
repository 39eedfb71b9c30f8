package txpool

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
)

// The lexer's pin kinds carry the reasons backend.Snapshot reports, so
// that a refusal, the metrics and SHOW PINS name a pin alike, and every
// reason says how it ends.
func TestPinReasonsAgreeWithSnapshot(t *testing.T) {
	want := map[sqlscan.PinKind]string{
		sqlscan.PinTempTable: backend.PinTempTable, sqlscan.PinAdvisoryLock: backend.PinAdvisory,
		sqlscan.PinListen: backend.PinListen, sqlscan.PinHoldCursor: backend.PinHoldCursor,
		sqlscan.PinSQLPrepare: backend.PinSQLPrepare, sqlscan.PinRole: backend.PinRole, sqlscan.PinLoad: backend.PinLoad,
	}
	for k, r := range want {
		require.Equal(t, r, txcore.PinReason(k))
	}
	for _, r := range []string{backend.PinTempTable, backend.PinAdvisory, backend.PinListen, backend.PinHoldCursor,
		backend.PinSQLPrepare, backend.PinRole, backend.PinLoad, backend.PinUnsupported} {
		require.NotContains(t, txcore.PinRelease(r), "DISCARD ALL or the end of the session", "reason %s has its own release", r)
	}
}
