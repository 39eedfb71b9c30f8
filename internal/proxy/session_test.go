package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestPsqlOverTCPAndSocket(t *testing.T) {
	h := start(t, "")
	port := strconv.Itoa(h.port)
	for _, host := range []string{"127.0.0.1", h.sock} {
		out, err := psql(t, []string{"PGPASSWORD=" + pgtest.AppPassword}, "-h", host, "-p", port, "-U", pgtest.AppUser, "-d", pgtest.AppDB, "-c", "SELECT 40 + 2")
		require.NoError(t, err, out)
		require.Equal(t, "42", strings.TrimSpace(out), "via %s", host)

		out, err = psql(t, []string{"PGPASSWORD=" + pgtest.MD5Password}, "-h", host, "-p", port, "-U", pgtest.MD5User, "-d", pgtest.AppDB, "-c", "SELECT current_user")
		require.NoError(t, err, out)
		require.Equal(t, pgtest.MD5User, strings.TrimSpace(out), "via %s", host)
	}
}

func TestWrongPasswordAndUnknownNames(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	_, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, "wrong"))
	require.Equal(t, "28P01", pgCode(err), "scram: %v", err)
	_, err = pgconn.Connect(ctx, h.dsn(pgtest.MD5User, "wrong"))
	require.Equal(t, "28P01", pgCode(err), "md5: %v", err)
	_, err = pgconn.Connect(ctx, h.dsn("nobody", "x"))
	require.Equal(t, "28P01", pgCode(err), "unknown user: %v", err)
	require.Contains(t, err.Error(), "password authentication failed")

	out, err := psql(t, []string{"PGPASSWORD=wrong"}, "-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-d", pgtest.AppDB, "-c", "SELECT 1")
	require.Error(t, err)
	require.Contains(t, out, `password authentication failed for user "app"`)

	_, err = pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=app password=app_pw dbname=nosuchdb sslmode=disable", h.port))
	require.Equal(t, "3D000", pgCode(err), "%v", err)
	require.Contains(t, err.Error(), `"nosuchdb"`)
	require.NotContains(t, h.logs.String(), pgtest.AppPassword, "passwords never appear in logs")
}

func TestBackendPIDIsTheServers(t *testing.T) {
	h := start(t, "")
	c := h.connect(context.Background())
	pid := query(t, c, "SELECT pg_backend_pid()")
	require.Equal(t, strconv.Itoa(int(c.PID())), pid[0])
}

func TestProtocol32IsNegotiatedDown(t *testing.T) {
	h := start(t, "")
	c := h.connect(context.Background(), "max_protocol_version=latest")
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"))
}

func TestStartupParametersOnFreshAndReusedConnections(t *testing.T) {
	// One server connection: a client with other startup parameters gets
	// a new one opened with its own (the idle one is replaced), a client
	// with the same parameters reuses it (settings affinity).
	h := start(t, "min_size: 0\n      max_size: 1")
	ctx := context.Background()
	var pids []string
	for _, i := range []int{0, 1, 1} {
		c, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword,
			"application_name=client"+strconv.Itoa(i), "search_path=s"+strconv.Itoa(i)+",public",
			`options='-c DateStyle=SQL,DMY'`))
		require.NoError(t, err)
		require.Equal(t, []string{"client" + strconv.Itoa(i)}, query(t, c, "SHOW application_name"))
		require.Equal(t, []string{"s" + strconv.Itoa(i) + ",public"}, query(t, c, "SHOW search_path"))
		require.Equal(t, []string{"SQL, DMY"}, query(t, c, "SHOW DateStyle"))
		require.Equal(t, "SQL, DMY", c.ParameterStatus("DateStyle"), "the client sees the server's ParameterStatus")
		require.Equal(t, "client"+strconv.Itoa(i), c.ParameterStatus("application_name"))
		pids = append(pids, query(t, c, "SELECT pg_backend_pid()")[0])
		require.NoError(t, c.Close(ctx))
	}
	require.NotEqual(t, pids[0], pids[1], "other parameters: a connection opened with them")
	require.Equal(t, pids[1], pids[2], "the same parameters: the third client must have reused the server connection")
}

func TestPGOPTIONSWithPsql(t *testing.T) {
	h := start(t, "min_size: 0\n      max_size: 1")
	for range 2 {
		out, err := psql(t, []string{"PGPASSWORD=" + pgtest.AppPassword, "PGOPTIONS=-c DateStyle=SQL,DMY", "PGAPPNAME=psqltest"},
			"-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-d", pgtest.AppDB,
			"-c", "SHOW DateStyle", "-c", "SHOW application_name")
		require.NoError(t, err, out)
		require.Equal(t, "SQL, DMY\npsqltest", strings.TrimSpace(out))
	}
}

func TestSessionStateDoesNotLeakToNextClient(t *testing.T) {
	h := start(t, "min_size: 0\n      max_size: 1")
	ctx := context.Background()
	c1, err := pgconn.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	query(t, c1, "CREATE TEMP TABLE leak (x int)")
	query(t, c1, "SET work_mem = '7MB'")
	_, err = c1.Exec(ctx, "PREPARE leaky AS SELECT 1").ReadAll()
	require.NoError(t, err)
	_, err = c1.Exec(ctx, "BEGIN; SELECT 1").ReadAll() // left open: sluice must roll it back
	require.NoError(t, err)
	pid1 := query(t, c1, "SELECT pg_backend_pid()")[0]
	require.NoError(t, c1.Close(ctx))

	c2 := h.connect(ctx)
	require.Equal(t, pid1, query(t, c2, "SELECT pg_backend_pid()")[0], "same server connection")
	require.Equal(t, []string{"0"}, query(t, c2, "SELECT count(*) FROM pg_class WHERE relname = 'leak' AND relpersistence = 't'"))
	require.NotEqual(t, []string{"7MB"}, query(t, c2, "SHOW work_mem"))
	require.Equal(t, []string{"0"}, query(t, c2, "SELECT count(*) FROM pg_prepared_statements"))
	require.Equal(t, []string{"idle"}, query(t, c2, "SELECT 'idle'")) // not in an aborted or open transaction
	require.Equal(t, byte('I'), c2.TxStatus())
}

func TestCancelRequestReachesTheServer(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	c := h.connect(ctx)
	other := h.connect(ctx) // a second session whose query must be unaffected
	done := make(chan error, 1)
	go func() {
		_, err := other.Exec(ctx, "SELECT pg_sleep(0.5)").ReadAll()
		done <- err
	}()
	monitor := h.connect(ctx)
	cancelled := make(chan error, 1)
	go func() {
		// Wait until the sleep is visibly running, then cancel it.
		if err := pgtest.WaitActive(ctx, monitor, c.PID(), "pg_sleep(30)"); err != nil {
			cancelled <- err
			return
		}
		cancelled <- c.CancelRequest(ctx)
	}()
	_, err := c.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
	require.NoError(t, <-cancelled)
	require.Equal(t, "57014", pgCode(err), "%v", err)
	require.Equal(t, []string{"1"}, query(t, c, "SELECT 1"), "the session goes on after a cancel")
	require.NoError(t, <-done, "the other session's query was not cancelled")
}
