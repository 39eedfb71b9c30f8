package proxy_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// poolModes are the two ways a client can be served; the FATAL tests run
// in both.
var poolModes = map[string]string{
	"session":     "max_size: 5",
	"transaction": txPool(5),
}

// TestServerFatalIsTheOnlyError: a backend terminated under its client
// (pg_terminate_backend, 57P01) ends the client's connection with the
// server's FATAL alone, as a direct connection does: psql prints it and
// not sluice's "connection to the database server was lost".
func TestServerFatalIsTheOnlyError(t *testing.T) {
	for mode, pool := range poolModes {
		t.Run(mode, func(t *testing.T) {
			h := start(t, pool)
			run := func(port int) string {
				out, err := psql(t, []string{"PGPASSWORD=" + pgtest.AppPassword}, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
					"-U", pgtest.AppUser, "-d", pgtest.AppDB, "-c", "SELECT pg_terminate_backend(pg_backend_pid())")
				require.Error(t, err, out)
				return out
			}
			out := run(h.port)
			require.Contains(t, out, "FATAL:  terminating connection due to administrator command")
			require.NotContains(t, out, "connection to the database server was lost")
			require.Equal(t, 1, strings.Count(out, "FATAL"), out)
			require.Equal(t, run(pgtest.Cluster(t).Port), out, "psql prints what it prints on a direct connection")
		})
	}
}

// TestServerFatalThenEOF reads the wire after the server's FATAL: exactly
// one ErrorResponse (57P01), then end of file, in both pool modes.
func TestServerFatalThenEOF(t *testing.T) {
	for mode, pool := range poolModes {
		t.Run(mode, func(t *testing.T) {
			h := start(t, pool)
			fe := rawLogin(t, h)
			fe.Send(&pgproto3.Query{String: "SELECT pg_terminate_backend(pg_backend_pid())"})
			require.NoError(t, fe.Flush())
			var errs []*pgproto3.ErrorResponse
			for {
				msg, err := fe.Receive()
				if err != nil {
					require.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), "%v", err)
					break
				}
				if e, ok := msg.(*pgproto3.ErrorResponse); ok {
					errs = append(errs, &pgproto3.ErrorResponse{Severity: e.Severity, Code: e.Code, Message: e.Message})
				}
			}
			require.Len(t, errs, 1, "%+v", errs)
			require.Equal(t, "57P01", errs[0].Code)
			require.Equal(t, "FATAL", errs[0].Severity)
		})
	}
}

// rawLogin logs in to h with SCRAM over a plain socket and returns the
// protocol reader/writer, past the first ReadyForQuery.
func rawLogin(t *testing.T, h *harness) *pgproto3.Frontend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// pgconn does the SCRAM exchange; Hijack hands over the socket.
	pc := h.connect(ctx)
	hj, err := pc.Hijack()
	require.NoError(t, err)
	t.Cleanup(func() { hj.Conn.Close() })
	return pgproto3.NewFrontend(hj.Conn, hj.Conn)
}

// TestIdleSessionTimeoutFatalIsTheOnlyError: in session mode the server's
// idle_session_timeout FATAL (57P05) reaches the idle client alone, then
// the connection closes.
func TestIdleSessionTimeoutFatalIsTheOnlyError(t *testing.T) {
	h := start(t, poolModes["session"])
	fe := rawLogin(t, h)
	fe.Send(&pgproto3.Query{String: "SET idle_session_timeout = '50ms'"})
	require.NoError(t, fe.Flush())
	var errs []string
	for {
		msg, err := fe.Receive()
		if err != nil {
			require.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), "%v", err)
			break
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			errs = append(errs, e.Severity+" "+e.Code+" "+e.Message)
		}
	}
	require.Equal(t, []string{"FATAL 57P05 terminating connection due to idle-session timeout"}, errs)
}
