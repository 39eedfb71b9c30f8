package wire

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	b, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestAliveSeesPendingBytesAndClose(t *testing.T) {
	a, b := tcpPair(t)
	require.True(t, Alive(a), "idle, open connection")
	_, err := b.Write([]byte("E"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !Alive(a) }, 5e9, 1e6, "unexpected bytes make it unusable")

	c, d := tcpPair(t)
	d.Close()
	require.Eventually(t, func() bool { return !Alive(c) }, 5e9, 1e6, "peer closed")
}

func TestWaitReadableReturnsWhenBytesArriveWithoutConsumingThem(t *testing.T) {
	a, b := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- WaitReadable(a) }()
	_, err := b.Write([]byte("hi"))
	require.NoError(t, err)
	require.NoError(t, <-done)
	buf := make([]byte, 2)
	n, err := a.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "hi", string(buf[:n]))

	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	require.ErrorIs(t, WaitReadable(p), ErrNoRawConn)
}
