package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// socketPair returns both ends of a real connection on network, the
// accepted end wrapped in a Socket.
func socketPair(t *testing.T, network string) (wrapped net.Conn, peer net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	require.NoError(t, err)
	defer ln.Close()
	peer, err = net.Dial(network, ln.Addr().String())
	require.NoError(t, err)
	c, err := ln.Accept()
	require.NoError(t, err)
	wrapped = NewSocket(c)
	require.IsType(t, &Socket{}, wrapped)
	t.Cleanup(func() { wrapped.Close(); peer.Close() })
	return wrapped, peer
}

func TestSocketReadWriteEOF(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			s, peer := socketPair(t, network)
			// A write far larger than the socket buffers: Write must park
			// while the buffer is full and finish once the peer reads.
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
			got := make(chan []byte)
			go func() { b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big)))); got <- b }()
			n, err := s.Write(big)
			require.NoError(t, err)
			require.Equal(t, len(big), n)
			require.True(t, bytes.Equal(big, <-got))

			// Read waits for bytes, returns what is there, then EOF.
			go func() { time.Sleep(20 * time.Millisecond); peer.Write([]byte("hello")); peer.Close() }()
			buf := make([]byte, 64)
			n, err = s.Read(buf)
			require.NoError(t, err)
			require.Equal(t, "hello", string(buf[:n]))
			n, err = s.Read(buf)
			require.Equal(t, 0, n)
			require.ErrorIs(t, err, io.EOF)
			n, err = s.Read(nil)
			require.Equal(t, 0, n)
			require.NoError(t, err)
		})
	}
}

func TestSocketHonoursDeadlinesAndClose(t *testing.T) {
	s, _ := socketPair(t, "tcp")
	buf := make([]byte, 8)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
	_, err := s.Read(buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	// A deadline set from another goroutine wakes a parked Read, which is
	// how the relay stops its loops.
	require.NoError(t, s.SetReadDeadline(time.Time{}))
	done := make(chan error)
	go func() { _, err := s.Read(buf); done <- err }()
	time.Sleep(20 * time.Millisecond)
	s.SetReadDeadline(time.Unix(1, 0))
	require.ErrorIs(t, <-done, os.ErrDeadlineExceeded)

	require.NoError(t, s.Close())
	_, err = s.Read(buf)
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = s.Write(buf)
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestSocketWriteToGonePeerIsAnErrorNotASignal(t *testing.T) {
	s, peer := socketPair(t, "tcp")
	peer.(*net.TCPConn).SetLinger(0) // the peer resets the connection
	peer.Close()
	// The first sends may still be accepted, until the reset has come
	// back: keep writing until one fails (however slow the machine is;
	// the test's own timeout ends a Write that never fails).
	var err error
	for err == nil {
		_, err = s.Write([]byte("x"))
		time.Sleep(time.Millisecond)
	}
	require.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE), "got %v", err)
}

func TestNewSocketLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	require.Equal(t, a, NewSocket(a))
	s, _ := socketPair(t, "tcp")
	require.Equal(t, s, NewSocket(s), "a Socket is not wrapped twice")
	// The Poller still finds the descriptor through a Socket.
	require.NotNil(t, NewPoller(s).rc)
}

func BenchmarkSocketPingPong(b *testing.B) {
	for _, kind := range []string{"net.Conn", "Socket"} {
		b.Run(kind, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(c, c)
				c.Close()
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(b, err)
			defer c.Close()
			if kind == "Socket" {
				c = NewSocket(c)
			}
			msg, buf := []byte("ping"), make([]byte, 4)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
