package handoff

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The old process's fleet seat travels in its hello, behind the version
// text: it round-trips, and the whole tail stays within what every
// binary's decoder accepts as version text (a binary that predates the
// extension reads it as part of the version, used in logs only).
func TestHelloCarriesTheFleetSeat(t *testing.T) {
	in := Hello{Protocol: Protocol, ClientFormat: 3, PID: 77, Version: "v1.2.3",
		Fleet: FleetSeat{PeerID: 513, Incarnation: "0123456789abcdef"}}
	out, err := DecodeHello(EncodeHello(in))
	require.NoError(t, err)
	require.Equal(t, in, out)

	long := in
	long.Version = strings.Repeat("v", 1000)
	b := EncodeHello(long)
	require.LessOrEqual(t, len(b)-18, maxVersion, "an older decoder refuses a longer tail")
	out, err = DecodeHello(b)
	require.NoError(t, err)
	require.Equal(t, in.Fleet, out.Fleet, "the version is clipped, never the seat")

	// Without a seat, the hello is byte for byte what older binaries send.
	plain := Hello{Protocol: Protocol, ClientFormat: 3, PID: 77, Version: "v1.2.3"}
	require.Equal(t, "sluiceHO\x00\x01\x00\x00\x00\x03\x00\x00\x00Mv1.2.3", string(EncodeHello(plain)))
	out, err = DecodeHello(EncodeHello(plain))
	require.NoError(t, err)
	require.Equal(t, FleetSeat{}, out.Fleet)
}

// An extension of a later format is ignored (no seat); a malformed fleet
// extension is refused.
func TestHelloFleetExtensionBounds(t *testing.T) {
	base := EncodeHello(Hello{Protocol: Protocol, PID: 1, Version: "v"})
	h, err := DecodeHello(append(append([]byte{}, base...), 0, 9, 1, 2, 3))
	require.NoError(t, err)
	require.Equal(t, "v", h.Version)
	require.Equal(t, FleetSeat{}, h.Fleet)
	for _, ext := range [][]byte{
		{0},                                   // a NUL and nothing
		{0, helloExtFleet},                    // truncated
		{0, helloExtFleet, 0, 1, 5, 'a'},      // incarnation shorter than said
		{0, helloExtFleet, 0, 0, 1, 'a'},      // peer number 0
		{0, helloExtFleet, 0, 1, 0, 'a', 'b'}, // trailing bytes
	} {
		_, err := DecodeHello(append(append([]byte{}, base...), ext...))
		if len(ext) == 1 {
			require.NoError(t, err, "%q: an empty extension is no extension", ext)
			continue
		}
		require.ErrorIs(t, err, ErrFrame, "%q", ext)
	}
}
