package topology

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func strs(vals ...any) [][]*string {
	row := make([]*string, len(vals))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			row[i] = &s
		}
	}
	return [][]*string{row}
}

func TestParseProbe(t *testing.T) {
	o, err := parseProbe(strs("f", "2", "0/5000060", nil, "0/4000000", "f"))
	require.NoError(t, err)
	require.Equal(t, Observation{Timeline: 2, FlushLSN: 0x5000060, ReplayLSN: 0x4000000}, o)

	o, err = parseProbe(strs("t", "1", nil, "0/4001A18", "0/4000000", "t"))
	require.NoError(t, err)
	require.Equal(t, Observation{InRecovery: true, Timeline: 1, ReceiveLSN: 0x4001A18, ReplayLSN: 0x4000000, ReplayPaused: true}, o)

	for _, rows := range [][][]*string{
		nil,
		strs("t", "1"),
		strs(nil, "1", nil, nil, nil, nil),
		strs("t", nil, nil, nil, nil, nil),
		strs("t", "x", nil, nil, nil, nil),
		strs("t", "4294967296", nil, nil, nil, nil),
		strs("f", "1", "nope", nil, nil, nil),
	} {
		_, err := parseProbe(rows)
		require.Error(t, err, "%v", rows)
	}
}
