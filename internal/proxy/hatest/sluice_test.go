package hatest

import (
	"fmt"
	"net"
	"testing"

	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/sluicetest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// sluiceFor starts sluice in transaction mode in front of set.
func sluiceFor(t *testing.T, set *pgtest.Set, failover string) (*proxy.Server, int, *syncbuf.Buffer) {
	return sluiceMode(t, set, failover, "transaction")
}

// sluiceMode starts sluice in front of set in the given pool mode.
func sluiceMode(t *testing.T, set *pgtest.Set, failover, mode string) (*proxy.Server, int, *syncbuf.Buffer) {
	t.Helper()
	text := fmt.Sprintf(`listen: {address: "127.0.0.1:0"}
admin: {address: ""}
log: {level: info}
shutdown_timeout: 5s
users:
  - {name: %s, password: %s}
  - {name: %s, password: %s}
databases:
  %s:
    hosts: ["127.0.0.1:%d", "127.0.0.1:%d"]
    pool_mode: %s
    health_check_interval: 500ms
    pool: {max_size: 10, borrow_timeout: 60s}
    backend: {dial_timeout: 2s}
    failover: {user: %s%s}
`, pgtest.AppUser, pgtest.AppPassword, pgtest.MonitorUser, pgtest.MonitorPassword, pgtest.AppDB,
		set.Primary.Port, set.Standbys[0].Port, mode, pgtest.MonitorUser, failover)
	srv, logs := startText(t, text)
	return srv, srv.Addr().(*net.TCPAddr).Port, logs
}

// startText starts sluice from a config text, shut down (and its log
// shown if the test failed) at the end of the test.
func startText(t *testing.T, text string) (*proxy.Server, *syncbuf.Buffer) {
	t.Helper()
	srv, _, logs := sluicetest.Start(t, text, nil)
	return srv, logs
}

func dsn(port int) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=10",
		port, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
}
