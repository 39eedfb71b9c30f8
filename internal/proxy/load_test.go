package proxy_test

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// pgbench runs pgbench through sluice and checks no transaction failed.
func pgbench(t *testing.T, h *harness, args ...string) string {
	t.Helper()
	full := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(h.port), "-U", pgtest.AppUser, "-n"}, args...)
	full = append(full, pgtest.AppDB)
	cmd := exec.Command("pgbench", full...)
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+pgtest.AppPassword)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, regexp.MustCompile(`number of failed transactions: 0 `), string(out))
	require.Regexp(t, regexp.MustCompile(`number of transactions actually processed: [1-9]`), string(out))
	t.Logf("pgbench %v:\n%s", args, out)
	return string(out)
}

// A transaction count, not a duration: pgbench's -T clock starts before
// its threads log their clients in one by one, so on a loaded machine a
// duration can run out before the first transaction.
func TestPgbenchSelectOnly50Clients(t *testing.T) {
	h := start(t, "min_size: 2\n      max_size: 60")
	out := pgbench(t, h, "-S", "-c", "50", "-j", "2", "-t", "500")
	require.Contains(t, out, "number of transactions actually processed: 25000/25000")
}

func TestPgbenchNewConnectionPerTransaction(t *testing.T) {
	h := start(t, "min_size: 2\n      max_size: 60")
	pgbench(t, h, "-S", "-C", "-c", "20", "-T", "10")
}

func TestPgbenchWrites(t *testing.T) {
	h := start(t, "min_size: 2\n      max_size: 60")
	pgbench(t, h, "-N", "-c", "8", "-j", "2", "-t", "200")
	_ = context.Background()
}
