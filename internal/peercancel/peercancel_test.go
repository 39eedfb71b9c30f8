package peercancel

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSecret = bytes.Repeat([]byte{7}, 32)

func TestKeyLayout(t *testing.T) {
	for _, peer := range []uint16{1, 2, 77, MaxPeer} {
		for _, serial := range []uint32{0, 1, serialMask, serialMask + 1, 1<<32 - 1} {
			pid := PID(peer, serial)
			require.Zero(t, pid>>31, "a process ID stays a positive int4")
			require.NotZero(t, pid)
			got, ok := PeerOf(pid)
			require.True(t, ok)
			require.Equal(t, peer, got)
			require.Equal(t, serial&serialMask, pid&serialMask)
		}
	}
	for _, pid := range []uint32{0, 1, serialMask, 1 << 31, 1<<32 - 1} {
		_, ok := PeerOf(pid)
		require.False(t, ok, "pid %#x carries no peer", pid)
	}
	require.Equal(t, uint32(16383), uint32(MaxPeer), "peer numbers 1..16383, as the fleet's members are numbered")
}

func TestSealOpen(t *testing.T) {
	f := Forward{Sender: 3, PID: PID(2, 99), Secret: [4]byte{1, 2, 3, 4}, UnixMilli: 1_700_000_000_123, Nonce: [16]byte{9, 8, 7}}
	pkt, err := Seal(nil, testSecret, f)
	require.NoError(t, err)
	require.Len(t, pkt, PacketLen)
	require.Equal(t, uint32(PacketLen), binary.BigEndian.Uint32(pkt))
	require.Equal(t, Code, binary.BigEndian.Uint32(pkt[4:]))
	require.Equal(t, uint32(80877123), Code)
	got, err := Open(testSecret, pkt[4:])
	require.NoError(t, err)
	require.Equal(t, f, got)

	_, err = Open(bytes.Repeat([]byte{8}, 32), pkt[4:])
	require.ErrorIs(t, err, ErrBadMAC, "another fleet's secret")
	for i := 4; i < BodyLen; i++ { // every byte after the code and version is covered
		tampered := bytes.Clone(pkt[4:])
		tampered[i] ^= 1
		_, err := Open(testSecret, tampered)
		require.Error(t, err, "byte %d flipped", i)
	}
	_, err = Open(testSecret, pkt[4:len(pkt)-1])
	require.ErrorIs(t, err, ErrMalformed)
	_, err = Open(testSecret, append(bytes.Clone(pkt[4:]), 0))
	require.ErrorIs(t, err, ErrMalformed)
	_, err = Open(nil, pkt[4:])
	require.ErrorIs(t, err, ErrShortSecret, "an empty secret would let anyone seal")
	_, err = Seal(nil, testSecret[:MinSecret-1], f)
	require.ErrorIs(t, err, ErrShortSecret)
}

func TestFresh(t *testing.T) {
	const now = 1_000_000_000
	require.True(t, Fresh(now, now))
	require.True(t, Fresh(now-WindowMilli, now))
	require.True(t, Fresh(now+WindowMilli, now), "a sender's clock a little ahead")
	require.False(t, Fresh(now-WindowMilli-1, now))
	require.False(t, Fresh(now+WindowMilli+1, now))
}

func nonce(i int) [16]byte {
	var n [16]byte
	binary.BigEndian.PutUint64(n[:], uint64(i))
	return n
}

func TestReplays(t *testing.T) {
	const now = 1_000_000_000
	var r Replays
	f := Forward{UnixMilli: now, Nonce: nonce(1)}
	require.True(t, r.Check(f, now))
	require.False(t, r.Check(f, now), "the same nonce again")
	require.False(t, r.Check(f, now+WindowMilli), "still fresh, still remembered")
	require.True(t, r.Check(Forward{UnixMilli: now, Nonce: nonce(2)}, now))
	// Once stale, nonces are forgotten (Fresh refuses their forwards).
	require.True(t, r.Check(Forward{UnixMilli: now + 2*WindowMilli, Nonce: nonce(3)}, now+WindowMilli+1))
	require.Equal(t, 1, r.Len())
}

// A flood keeps the memory fixed: the oldest nonces make room.
func TestReplaysBounded(t *testing.T) {
	const now = 1_000_000_000
	var r Replays
	for i := range ReplayCapacity + 100 {
		require.True(t, r.Check(Forward{UnixMilli: now, Nonce: nonce(i)}, now))
	}
	require.Equal(t, ReplayCapacity, r.Len())
	require.False(t, r.Check(Forward{UnixMilli: now, Nonce: nonce(ReplayCapacity + 99)}, now), "the newest are remembered")
	require.True(t, r.Check(Forward{UnixMilli: now, Nonce: nonce(0)}, now), "the oldest made room")
}

func FuzzOpen(f *testing.F) {
	good, err := Seal(nil, testSecret, Forward{Sender: 1, PID: PID(2, 5), Secret: [4]byte{1, 2, 3, 4}, UnixMilli: 1, Nonce: [16]byte{1}})
	require.NoError(f, err)
	f.Add(good[4:])
	f.Add(good[4 : len(good)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		fw, err := Open(testSecret, body)
		if err != nil {
			return
		}
		// Only a sealed message opens, and it seals back to itself.
		again, err := Seal(nil, testSecret, fw)
		require.NoError(t, err)
		require.Equal(t, body, again[4:])
	})
}

// BenchmarkSealOpen is one forward's crypto: what the sender and the
// receiver spend on it together.
func BenchmarkSealOpen(b *testing.B) {
	f := Forward{Sender: 1, PID: PID(2, 5), UnixMilli: 1}
	buf := make([]byte, 0, PacketLen)
	b.ReportAllocs()
	for b.Loop() {
		pkt, _ := Seal(buf[:0], testSecret, f)
		if _, err := Open(testSecret, pkt[4:]); err != nil {
			b.Fatal(err)
		}
	}
}
