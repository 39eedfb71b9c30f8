//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// A client that cannot move (transaction mode, pinned by a temporary
// table) stays on the old process after an upgrade; its CancelRequest
// reaches the new process, which has the listeners, and must still cancel
// the query running on the old one. A cancel with a key nobody issued is
// ignored, as PostgreSQL does.
func TestUpgradeCancelReachesClientLeftOnOldProcess(t *testing.T) {
	p := startSluice(t, sluiceOpts{shutdownTimeout: "5m"})
	ctx := context.Background()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s_tx sslmode=disable connect_timeout=30",
		p.port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
	c, err := pgconn.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "CREATE TEMP TABLE upcancel_pin (x int)").ReadAll()
	require.NoError(t, err, "the temporary table pins the client to its server connection")

	const query = "SELECT pg_sleep(30) /* upgrade-cancel */"
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, query).ReadAll()
		done <- err
	}()
	monitor, err := pgconn.Connect(ctx, pgtest.Cluster(t).DSN(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
	require.NoError(t, err)
	defer monitor.Close(ctx)
	waitFor(t, "the query to run", func() bool {
		res := monitor.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1",
			[][]byte{[]byte(query)}, nil, nil, nil).Read()
		return res.Err == nil && string(res.Rows[0][0]) == "1"
	})

	old := p.pid()
	require.NoError(t, p.signalUpgrade())
	waitFor(t, "the new process in the pid file", func() bool { return p.pid() != old })
	// The old process says so once the new one said ready (which passes
	// cancels on from then).
	waitFor(t, "the old process to stop accepting", func() bool {
		return strings.Contains(p.log(), `"msg":"stopped accepting clients: another process serves the listeners"`)
	})
	require.False(t, gone(old), "the old process still serves the pinned client")

	// A key nobody issued: ignored by both processes, which serve on.
	sendCancelRequest(t, p.port, 4242, [4]byte{0xde, 0xad, 0xbe, 0xef})
	require.NoError(t, p.selectOne(ctx, false), "the new process serves after a bogus cancel")

	// The client's own key, to the listening port (the new process's).
	start := time.Now()
	require.NoError(t, c.CancelRequest(ctx))
	err = <-done
	t.Logf("the query ended %s after the cancel request (of 30 s)", time.Since(start).Round(time.Millisecond))
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "the query was cancelled, got %v", err)
	require.Equal(t, "57014", pgErr.Code)

	// The client goes on, still on the old process; once it leaves, the
	// old process exits.
	_, err = c.Exec(ctx, "SELECT count(*) FROM upcancel_pin").ReadAll()
	require.NoError(t, err, "the client's session (its temporary table) survived the cancel")
	require.NoError(t, c.Close(ctx))
	waitFor(t, "the old process to exit once its client left", func() bool { return gone(old) })
	require.NoError(t, <-p.exited)
	require.NoError(t, p.selectOne(ctx, false))
}

// sendCancelRequest sends a CancelRequest with pid and secret to port, as
// a client would, and waits for the server to close the connection.
func sendCancelRequest(t *testing.T, port int, pid uint32, secret [4]byte) {
	t.Helper()
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	defer nc.Close()
	msg := make([]byte, 16)
	binary.BigEndian.PutUint32(msg[0:], 16)
	binary.BigEndian.PutUint32(msg[4:], 80877102)
	binary.BigEndian.PutUint32(msg[8:], pid)
	copy(msg[12:], secret[:])
	_, err = nc.Write(msg)
	require.NoError(t, err)
	var b [1]byte
	_, err = nc.Read(b[:])
	require.Error(t, err, "the server closes a cancel connection without answering")
}
