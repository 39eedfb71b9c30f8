//go:build linux

package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// The acceptance list of issue #17 with real processes: a sluice started
// by 'sluice run --pidfile', real pgbench through it, one SIGUSR2 in the
// middle. pgbench never reconnects, so "the same client ports on the new
// process" and "no client aborted" together say no connection dropped.
// The pgbench tables are the fixtures' (pgtest: pgbench -i -s 1 on the
// direct port).

// upgradeUnderPgbench runs pgbench with clients against db, upgrades once
// all are connected, and checks that the new process has the very same
// client connections and that pgbench ends clean.
func upgradeUnderPgbench(t *testing.T, p *upgradeProc, db string, clients int, args ...string) {
	t.Helper()
	run := startPgbench(t, p, db, append([]string{"-c", strconv.Itoa(clients), "-j", "2"}, args...)...)
	before := p.waitClientPorts(t, "pgbench", clients)
	require.True(t, run.running(), "pgbench still runs at the upgrade (raise $SLUICE_TEST_UPGRADE_SECONDS)")
	old := p.pid()
	var newPID int
	timed(t, fmt.Sprintf("the upgrade with %d pgbench clients", clients), func() { newPID = p.upgrade() })
	require.NotEqual(t, old, newPID, "a new process serves")
	after := p.clientPorts(t, "pgbench")
	require.True(t, run.running(), "pgbench still ran after the upgrade (raise $SLUICE_TEST_UPGRADE_SECONDS)")
	require.Equal(t, before, after, "the new process serves the same client connections (client ports)")
	n := run.requireClean(t, clients)
	t.Logf("%d transactions, 0 failed, across the upgrade from pid %d to %d", n, old, newPID)
	require.NoError(t, p.selectOne(context.Background(), false))
}

// Transaction mode, pgbench -c 200 -j 2 -T $SLUICE_TEST_UPGRADE_SECONDS
// (15 by default; the 60 is the variable's value), pool of 16.
func TestUpgradeUnderPgbenchTransactionMode(t *testing.T) {
	p := startSluice(t, sluiceOpts{poolMode: "transaction", maxSize: 16})
	upgradeUnderPgbench(t, p, pgtest.AppDB, 200, "-T", strconv.Itoa(upgradeSeconds(t)))
	require.NoError(t, <-p.exited, "the old process exits cleanly")
}

// Session mode, pgbench -c 50, select-only (-S) and the default script:
// each client moves between transactions with its server connection.
func TestUpgradeUnderPgbenchSessionMode(t *testing.T) {
	for _, script := range []struct{ name, flag string }{{"select-only", "-S"}, {"tpcb-like", "-b"}} {
		t.Run(script.name, func(t *testing.T) {
			args := []string{"-T", strconv.Itoa(upgradeSeconds(t))}
			if script.flag == "-b" {
				args = append(args, "-b", "tpcb-like")
			} else {
				args = append(args, script.flag)
			}
			p := startSluice(t, sluiceOpts{poolMode: "session", maxSize: 60})
			upgradeUnderPgbench(t, p, pgtest.AppDB, 50, args...)
			require.NoError(t, <-p.exited, "the old process exits cleanly")
		})
	}
}

const versionPkg = "github.com/sluice-proxy/sluice/internal/version"

// An upgrade to a binary built from another commit (another version and
// commit stamped by the linker, as the Makefile does): the client-state
// format is the same, so clients move.
func TestUpgradeToAnotherCommitMovesClients(t *testing.T) {
	other := sluiceBinary(t, "-X "+versionPkg+".Version=v0.2.1-accept", "-X "+versionPkg+".Commit=0123456789ab")
	p := startSluice(t, sluiceOpts{poolMode: "transaction", maxSize: 16, args: []string{"--upgrade-binary", other}})
	upgradeUnderPgbench(t, p, pgtest.AppDB, 50, "-T", strconv.Itoa(upgradeSeconds(t)))
	require.NoError(t, <-p.exited, "the old process exits cleanly")
	require.Regexp(t, regexp.MustCompile(`"msg":"upgrade: handed over to the new process".*"version":"v0.2.1-accept"`), p.log())
	status, body := p.getAPI(t, "version")
	require.Equal(t, 200, status)
	require.Contains(t, body, "v0.2.1-accept", "the other build serves")
}

// An incompatible pair (the new binary keeps clients in another format):
// the listeners move, the clients do not and are not dropped either; they
// finish on the old process, which exits once they are gone.
func TestUpgradeToAnIncompatibleFormatDrains(t *testing.T) {
	other := sluiceBinary(t, "-X github.com/sluice-proxy/sluice/internal/daemon.testClientFormat=99")
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			p := startSluice(t, sluiceOpts{poolMode: mode, maxSize: 30, shutdownTimeout: "5m",
				args: []string{"--upgrade-binary", other}})
			// 20 clients of 100 transactions each at 100 per second in all:
			// about 20 s, whatever the machine, so the upgrade lands mid-run.
			run := startPgbench(t, p, pgtest.AppDB, "-c", "20", "-j", "2", "-t", "100", "-R", "100", "-S")
			p.waitClientPorts(t, "pgbench", 20)
			old := p.pid()
			require.NoError(t, p.signalUpgrade())
			waitFor(t, "the new process in the pid file", func() bool { return p.pid() != old })
			// The old process says so once it stopped accepting (the admin
			// endpoint too): from then on /api is the new process's.
			waitFor(t, "the old process to hand over", func() bool {
				return strings.Contains(p.log(), `"msg":"upgrade: handed over to the new process"`)
			})
			moved := p.clientPorts(t, "pgbench")
			oldAlive := !gone(old)
			require.True(t, run.running(), "pgbench still runs after the upgrade (it ran too fast)")
			require.Empty(t, moved, "no client moved to the incompatible process")
			assert.True(t, oldAlive, "the old process serves its clients until they are done")
			run.requireClean(t, 20)
			waitFor(t, "the old process to exit once its clients are gone", func() bool { return gone(old) })
			require.NoError(t, <-p.exited)
			require.Contains(t, p.log(), "clients finish here (served until they leave or shutdown_timeout)")
			require.NoError(t, p.selectOne(context.Background(), false), "the new process serves")
		})
	}
}
