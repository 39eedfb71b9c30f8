package handoff

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is both ends of a hand-off socket, as Conns.
func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, f, err := Pair()
	require.NoError(t, err)
	b, err := FileConn(f)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func TestSendRecvWithFiles(t *testing.T) {
	before := openFDs(t)
	a, b := pair(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, a.Send(KindListener, EncodeListener("listen.address", "127.0.0.1:6432"), r, w))
	kind, payload, files, err := b.Recv()
	require.NoError(t, err)
	require.Equal(t, KindListener, kind)
	role, addr, err := DecodeListener(payload)
	require.NoError(t, err)
	require.Equal(t, "listen.address", role)
	require.Equal(t, "127.0.0.1:6432", addr)
	require.Len(t, files, 2)
	// The received descriptors are the same pipe: bytes written on the
	// sender's end come out of the received read end.
	_, err = w.Write([]byte("x"))
	require.NoError(t, err)
	got := make([]byte, 1)
	_, err = files[0].Read(got)
	require.NoError(t, err)
	require.Equal(t, "x", string(got))
	for _, f := range append(files, r, w) {
		require.NoError(t, f.Close())
	}
	a.Close()
	b.Close()
	require.Equal(t, before, openFDs(t), "every descriptor sent and received is closed")
}

func TestLargePayloadAndOrder(t *testing.T) {
	a, b := pair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB, beyond a socket buffer
	errc := make(chan error, 1)
	go func() {
		r, w, err := os.Pipe()
		if err != nil {
			errc <- err
			return
		}
		defer r.Close()
		defer w.Close()
		if err := a.Send(KindClient, big, r); err != nil {
			errc <- err
			return
		}
		errc <- a.Send(KindDone, nil, w)
	}()
	kind, payload, files, err := b.Recv()
	require.NoError(t, err)
	require.Equal(t, KindClient, kind)
	require.Equal(t, big, payload)
	require.Len(t, files, 1)
	closeFiles(files)
	kind, payload, files, err = b.Recv()
	require.NoError(t, err)
	require.Equal(t, KindDone, kind)
	require.Empty(t, payload)
	require.Len(t, files, 1, "each message's descriptors come with it")
	closeFiles(files)
	require.NoError(t, <-errc)
	a.Close()
	_, _, _, err = b.Recv()
	require.ErrorIs(t, err, io.EOF)
}

func TestHandshake(t *testing.T) {
	a, b := pair(t)
	errc := make(chan error, 1)
	var peerOfA Hello
	go func() {
		var err error
		peerOfA, err = a.Handshake(Hello{ClientFormat: 7, PID: 10, Version: "v-old"})
		errc <- err
	}()
	peerOfB, err := b.Handshake(Hello{ClientFormat: 8, PID: 11, Version: "v-new"})
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.Equal(t, Hello{Protocol: Protocol, ClientFormat: 7, PID: 10, Version: "v-old"}, peerOfB)
	require.Equal(t, Hello{Protocol: Protocol, ClientFormat: 8, PID: 11, Version: "v-new"}, peerOfA)
}

func TestHandshakeIncompatible(t *testing.T) {
	a, b := pair(t)
	hello := EncodeHello(Hello{Protocol: Protocol + 1, PID: 3, Version: "future"})
	require.NoError(t, a.Send(KindHello, hello))
	peer, err := b.Handshake(Hello{PID: 4})
	require.ErrorIs(t, err, ErrIncompatible)
	require.Equal(t, "future", peer.Version)
}

func TestRecvRejectsBadFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"unknown kind", []byte{9, 0, 0, 0, 0, 0, 0, 0}, "unknown kind"},
		{"kind zero", []byte{0, 0, 0, 0, 0, 0, 0, 0}, "unknown kind"},
		{"reserved bytes", []byte{1, 0, 1, 0, 0, 0, 0, 0}, "reserved"},
		{"too many files", []byte{1, 9, 0, 0, 0, 0, 0, 0}, "files"},
		{"too long", []byte{4, 0, 0, 0, 0x7f, 0, 0, 0}, "payload of"},
		{"files announced, none came", []byte{2, 1, 0, 0, 0, 0, 0, 0}, "announced 1 files"},
		{"truncated payload", []byte{4, 0, 0, 0, 0, 0, 0, 9, 'a'}, "unexpected EOF"},
		{"truncated header", []byte{4, 0, 0}, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t)
			_, err := a.uc.Write(tc.frame)
			require.NoError(t, err)
			a.Close()
			_, _, files, err := b.Recv()
			require.Error(t, err)
			require.Nil(t, files)
			require.True(t, strings.Contains(err.Error(), tc.want), err.Error())
		})
	}
}

func TestSendLimits(t *testing.T) {
	a, _ := pair(t)
	require.Error(t, a.Send(KindClient, make([]byte, MaxPayload+1)))
	files := make([]*os.File, MaxFiles+1)
	require.Error(t, a.Send(KindClient, nil, files...))
}

func TestPayloadDecoders(t *testing.T) {
	_, _, err := DecodeListener(nil)
	require.True(t, errors.Is(err, ErrFrame))
	_, _, err = DecodeListener([]byte{5, 'a'})
	require.ErrorIs(t, err, ErrFrame)
	_, err = DecodeHello([]byte("sluiceHX0123456789"))
	require.ErrorIs(t, err, ErrFrame)
	require.Len(t, AbortText(strings.Repeat("x", 10000)), maxAbortText)
	require.NoError(t, DecodeAdopted(EncodeAdopted(nil)))
	err = DecodeAdopted(EncodeAdopted(errors.New("no slot")))
	require.ErrorContains(t, err, "did not adopt the client: no slot")
	require.ErrorIs(t, DecodeAdopted(make([]byte, maxAbortText+1)), ErrFrame)
	h, err := DecodeHello(EncodeHello(Hello{Version: strings.Repeat("v", 1000)}))
	require.NoError(t, err)
	require.Len(t, h.Version, maxVersion)
}
