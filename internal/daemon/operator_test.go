package daemon_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/version"
)

const apiToken = "0123456789abcdef-daemon"

func writeOperatorConfig(t *testing.T, path string, adminPort int, level string) {
	writeOperatorConfigWith(t, path, adminPort, level, "")
}

// writeOperatorConfigWith is writeOperatorConfig with more lines for the
// database (indented by four spaces, e.g. "    pool_mode: transaction\n").
func writeOperatorConfigWith(t *testing.T, path string, adminPort int, level, dbLines string) {
	c := pgtest.Cluster(t)
	text := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
admin:
  address: 127.0.0.1:%d
  users: [%s]
  api_token: %s
log:
  level: %s
users:
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d"]
%s`, adminPort, pgtest.AppUser, apiToken, level, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB, c.Port, dbLines)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
}

// TestConsoleAndAPIReloadAndShutdown: RELOAD on the console and POST
// /api/reload read the file again (an invalid one is an error the
// operator sees); SHUTDOWN on the console stops Wait.
func TestConsoleAndAPIReloadAndShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	adminPort := freePort(t)
	writeOperatorConfig(t, path, adminPort, "info")
	d, logs := startDaemonAt(t, path)
	waited := make(chan struct{})
	go func() { d.Wait(context.Background()); close(waited) }()

	ctx := context.Background()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=sluice sslmode=disable",
		d.Proxy.Addr().(*net.TCPAddr).Port, pgtest.AppUser, pgtest.AppPassword)
	adm, err := pgconn.Connect(ctx, dsn)
	require.NoError(t, err)
	rs, err := adm.Exec(ctx, "SHOW VERSION").ReadAll()
	require.NoError(t, err)
	require.Equal(t, version.String(), string(rs[0].Rows[0][0]), "SHOW VERSION names the version, the commit and the Go release")

	// A daemon not started by 'sluice run' cannot upgrade itself, and says so.
	_, err = adm.Exec(ctx, "UPGRADE").ReadAll()
	require.Error(t, err)
	require.Contains(t, err.Error(), "cannot upgrade itself")

	writeOperatorConfig(t, path, adminPort, "debug")
	_, err = adm.Exec(ctx, "RELOAD").ReadAll()
	require.NoError(t, err)
	require.Contains(t, logs.String(), "configuration reloaded")

	require.NoError(t, os.WriteFile(path, []byte("listen: {adress: x}\n"), 0o600))
	_, err = adm.Exec(ctx, "RELOAD").ReadAll()
	require.Error(t, err)
	require.Contains(t, err.Error(), "listen.adress")
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/api/reload", adminPort), nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusConflict, resp.StatusCode, "a failed reload is the operator's to fix")
	writeOperatorConfig(t, path, adminPort, "info")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	adm.Exec(ctx, "SHUTDOWN").ReadAll() // the console's own session ends with sluice
	select {
	case <-waited:
	case <-time.After(time.Minute):
		t.Fatal("SHUTDOWN did not stop the daemon")
	}
	require.Contains(t, logs.String(), "shutdown asked by an operator")
}

// SHUTDOWN WAIT_FOR_CLIENTS, as in PgBouncer: sluice stops accepting
// clients and exits when the last one has left. A transaction-pooled
// client goes on running transactions meanwhile (a plain shutdown ends
// it at its next idle point), and its leaving ends the daemon.
func TestShutdownWaitForClientsLetsTransactionClientsFinish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeOperatorConfigWith(t, path, freePort(t), "info", "    pool_mode: transaction\n")
	d, logs := startDaemonAt(t, path)
	waited := make(chan struct{})
	go func() { d.Wait(context.Background()); close(waited) }()
	ctx := context.Background()
	dsn := func(db string) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable",
			d.Proxy.Addr().(*net.TCPAddr).Port, pgtest.AppUser, pgtest.AppPassword, db)
	}
	app, err := pgconn.Connect(ctx, dsn(pgtest.AppDB))
	require.NoError(t, err)
	defer app.Close(ctx)
	adm, err := pgconn.Connect(ctx, dsn("sluice"))
	require.NoError(t, err)
	adm.Exec(ctx, "SHUTDOWN WAIT_FOR_CLIENTS").ReadAll() // the console's own session may end with it
	adm.Close(ctx)
	for { // new clients are refused once the listener is closed
		c, err := pgconn.Connect(ctx, dsn(pgtest.AppDB))
		if err != nil {
			break
		}
		c.Close(ctx)
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 5 {
		res := app.ExecParams(ctx, "SELECT $1::int", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil, nil).Read()
		require.NoError(t, res.Err, "transaction %d of a client connected before SHUTDOWN WAIT_FOR_CLIENTS", i)
	}
	select {
	case <-waited:
		t.Fatal("sluice stopped while a client was still connected")
	default:
	}
	app.Close(ctx)
	select {
	case <-waited:
	case <-time.After(time.Minute): // a guard against a hang
		t.Fatalf("sluice did not stop when its last client left\n%s", logs.String())
	}
}
