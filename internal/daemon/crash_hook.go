package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/sluice-proxy/sluice/internal/cluster"
)

// CrashAfterIntentEnv is for tests only, never for operators (it is in
// no user-facing documentation on purpose): a process started with
// SLUICE_TEST_CRASH_AFTER_INTENT_EPOCH=<n> kills itself with SIGKILL
// right after, as a database's failover leader, it wrote the intent of
// epoch n to etcd and before it promotes anything. It is how the fleet's
// tests put a leader's death at a deterministic point of a failover
// (internal/daemon/fleet_leader_kill_test.go): another instance must
// finish what the dead one started. The name says what it does so that
// nobody sets it by accident; an instance that has it logs so at start.
const CrashAfterIntentEnv = "SLUICE_TEST_CRASH_AFTER_INTENT_EPOCH"

// armCrashAfterIntent installs the hook CrashAfterIntentEnv asks for, if
// any. A value that is not a positive epoch is refused with an error.
func armCrashAfterIntent(p *cluster.Promoter, log *slog.Logger) error {
	v, set := os.LookupEnv(CrashAfterIntentEnv)
	if !set {
		return nil
	}
	epoch, err := strconv.ParseUint(v, 10, 64)
	if err != nil || epoch == 0 {
		return fmt.Errorf("%s=%q: want a positive epoch", CrashAfterIntentEnv, v)
	}
	log.Warn("TEST HOOK ARMED: this process kills itself after writing a failover intent", "env", CrashAfterIntentEnv, "epoch", epoch)
	p.SetAfterIntent(func(_ context.Context, db string, e uint64) {
		if e != epoch {
			return
		}
		log.Warn("TEST HOOK: killing this process after writing the failover intent", "database", db, "epoch", e)
		if self, err := os.FindProcess(os.Getpid()); err == nil {
			self.Kill() // SIGKILL: no deferred function, no lease revoked
		}
		select {} // nothing after the signal may run
	})
	return nil
}
