package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// TestLargeQueryDoesNotGrowSluice sends a 500 MB Query through the real
// sluice binary, run as a child process, and reads the process's peak
// resident size (VmHWM) before and after: it must grow by less than
// 64 MB in both pool modes, since sluice streams the message instead of
// holding it. (Before, transaction pooling assembled it with append: two
// such clients took sluice to 6 GB.) SLUICE_TEST_BIN runs another build
// of sluice instead (to measure an older one).
func TestLargeQueryDoesNotGrowSluice(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 1 GB through sluice")
	}
	bin := os.Getenv("SLUICE_TEST_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "sluice")
		out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sluice").CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	const size = 500 << 20
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			pid, dsn := runSluiceBinary(t, bin, poolModes[mode])
			ctx := context.Background()
			c, err := pgconn.Connect(ctx, dsn)
			require.NoError(t, err)
			defer c.Close(ctx)
			_, err = c.Exec(ctx, "SELECT 1").ReadAll()
			require.NoError(t, err)
			before := vmHWM(t, pid)
			hj, err := c.Hijack()
			require.NoError(t, err)
			defer hj.Conn.Close()
			sendLargeQuery(t, hj.Conn, size)
			errs, rows, ready := readUntilEnd(t, pgproto3.NewFrontend(hj.Conn, hj.Conn))
			require.Empty(t, errs)
			require.True(t, ready)
			require.Equal(t, []string{"1"}, rows)
			after := vmHWM(t, pid)
			t.Logf("pool_mode %s: a %d MB Query took sluice's VmHWM from %d kB to %d kB (+%d kB)", mode, size>>20, before, after, after-before)
			require.Less(t, after-before, int64(64<<10), "VmHWM grew by %d kB", after-before)
		})
	}
}

// sendLargeQuery writes a Query of about n bytes, a comment the server
// skips around SELECT 1, from one reused 1 MiB buffer.
func sendLargeQuery(t *testing.T, conn net.Conn, n int) {
	t.Helper()
	head, tail := "SELECT 1 /*", "*/"
	filler := n - len(head) - len(tail)
	w := bufio.NewWriterSize(conn, 1<<16)
	_, err := w.Write(queryHeader(len(head) + filler + len(tail)))
	require.NoError(t, err)
	w.WriteString(head)
	piece := []byte(strings.Repeat("x", 1<<20))
	for filler > 0 {
		k := min(filler, len(piece))
		_, err = w.Write(piece[:k])
		require.NoError(t, err)
		filler -= k
	}
	w.WriteString(tail)
	w.WriteByte(0)
	require.NoError(t, w.Flush())
}

// runSluiceBinary starts bin with a config for the test cluster and
// returns its process ID and a DSN, once it accepts logins.
func runSluiceBinary(t *testing.T, bin, pool string) (int, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	text := configText(t, t.TempDir(), pool, "")
	text = strings.Replace(text, "127.0.0.1:0", "127.0.0.1:"+strconv.Itoa(port), 1)
	text += "log:\n  level: warn\n"
	cfg := filepath.Join(t.TempDir(), "sluice.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(text), 0o600))
	cmd := exec.Command(bin, "run", "--config", cfg)
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
	})
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("sluice exited: %v\n%s", err, logs.String())
		default:
		}
		c, err := pgconn.Connect(context.Background(), dsn)
		if err == nil {
			c.Close(context.Background())
			return cmd.Process.Pid, dsn
		}
		time.Sleep(50 * time.Millisecond) // waiting for the listener, not asserting on time
	}
}

// vmHWM reads a process's peak resident set size in kB.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
