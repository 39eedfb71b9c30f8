package haproxytest

import (
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nameServer answers each connection with its name and closes it.
func nameServer(t *testing.T, name string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// Connections through the proxy go to the backends in turn.
func TestRoundRobinOverBackends(t *testing.T) {
	a, b := nameServer(t, "a"), nameServer(t, "b")
	p := Start(t, a, b)
	var got string
	for range 4 {
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		name, err := io.ReadAll(c)
		c.Close()
		require.NoError(t, err)
		got += string(name)
	}
	require.Equal(t, "abab", got)
}

type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func TestNoHAProxySkipsOrFailsUnderCI(t *testing.T) {
	saved := Names
	Names = []string{"haproxy-not-installed"}
	t.Cleanup(func() { Names = saved })
	t.Setenv("CI", "")
	tb := &fakeTB{TB: t}
	require.Empty(t, Find(tb))
	require.Contains(t, tb.skipped, "apt-get install --no-install-recommends haproxy")
	require.Empty(t, tb.fatal)

	t.Setenv("CI", "true")
	tb = &fakeTB{TB: t}
	require.Empty(t, Find(tb))
	require.Contains(t, tb.fatal, "no haproxy found")
	require.Empty(t, tb.skipped)
}
