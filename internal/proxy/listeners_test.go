package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// The listening sockets move to a second server (as in an upgrade): it
// serves the same port and Unix socket, the first one's session goes on
// after it stops accepting, the socket's path stays, and an inherited
// socket the configuration does not name is closed.
func TestListenersMoveToAnotherServer(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	before := h.connect(ctx)

	files, err := h.srv.ListenerFiles()
	require.NoError(t, err)
	require.Len(t, files, 2, "the TCP listener and the Unix socket")
	unused, unusedWriter, err := os.Pipe()
	require.NoError(t, err)
	defer unusedWriter.Close()
	files = append(files, proxy.ListenerFile{Role: proxy.RoleReadOnly, Address: "127.0.0.1:1", File: unused})

	logs := &syncbuf.Buffer{}
	next, err := proxy.New(h.cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	next.Inherit(files)
	require.NoError(t, next.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		next.Shutdown(ctx)
	})
	require.Equal(t, h.port, next.Addr().(*net.TCPAddr).Port)
	require.Contains(t, logs.String(), "serving an inherited socket")
	_, err = unusedWriter.Write([]byte("x"))
	require.Error(t, err, "the inherited socket nobody serves is closed")

	h.srv.StopAccepting()
	sockPath := filepath.Join(h.sock, fmt.Sprintf(".s.PGSQL.%d", h.port))
	_, err = os.Stat(sockPath)
	require.NoError(t, err, "the Unix socket's path stays for the new server")
	for _, host := range []string{"127.0.0.1", h.sock} {
		c, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable",
			host, h.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
		require.NoError(t, err, "the second server accepts on %s", host)
		require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
		c.Close(ctx)
	}
	require.Equal(t, []string{"1"}, query(t, before, "SELECT 1"), "a session of the first server goes on")
}
