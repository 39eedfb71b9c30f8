package demo_test

import (
	"context"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
	"net"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/demo"
)

func TestMain(m *testing.M) {
	// The fleet demo starts its sluices as `<binary> run --config FILE`;
	// in this test that binary is the test binary, which then runs a
	// sluice instead of the tests (see TestDemoFleet).
	if os.Getenv(fleetChildEnv) == "1" {
		os.Exit(runSluiceChild())
	}
	goleak.VerifyTestMain(m)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The demo prints a psql line that works, and cleans up when stopped.
func TestDemoPrintsAWorkingConnectLine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, demo.Options{Port: freePort(t), AdminPort: freePort(t), Out: out, LogOut: &syncbuf.Buffer{}})
	}()
	re := regexp.MustCompile(`psql "(postgresql://[^"]+)"`)
	var url string
	require.Eventually(t, func() bool {
		m := re.FindStringSubmatch(out.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 2*time.Minute, 50*time.Millisecond, "demo never printed a psql line: %s", out)
	c, err := pgconn.Connect(ctx, url)
	require.NoError(t, err)
	res, err := c.Exec(ctx, "SELECT text FROM greetings").ReadAll()
	require.NoError(t, err)
	require.Equal(t, "hello from behind sluice", string(res[0].Rows[0][0]))
	require.NoError(t, c.Close(ctx))
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "stopped and removed")
}
