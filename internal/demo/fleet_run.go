package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/internal/cluster"
	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// runFleet is `sluice demo --fleet`: etcd, a primary with a synchronous
// standby, three sluice processes (auto_promote, deciding failover
// through etcd) and HAProxy round robin in front; a writer opening a
// connection per numbered insert through HAProxy; the primary killed
// with SIGKILL (the fleet promotes the standby once, epoch 2), then the
// failover's leader sluice killed with SIGKILL (HAProxy's check takes it
// out, the other two carry on); a summary checks every acknowledged row
// on the new primary exactly once. Every process it started is stopped
// before it returns.
func runFleet(ctx context.Context, o Options) (err error) {
	fo := *o.Fleet
	fo.FailoverOptions = fo.withDefaults()
	out := o.Out
	etcdBin, err := findTool("etcd-server", "etcd", "/usr/bin/etcd")
	if err != nil {
		return err
	}
	haproxyBin, err := findTool("haproxy", "haproxy", "/usr/sbin/haproxy")
	if err != nil {
		return err
	}
	if _, err := pgserver.FindBinDir(); err != nil {
		return err
	}
	if fo.Sluice == "" {
		if fo.Sluice, err = os.Executable(); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "sluice-demo-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f := &fleet{dir: dir}
	defer func() {
		f.stop()
		if len(f.all) > 0 {
			fmt.Fprintf(out, "stopped: %s\n", f.pids())
		}
	}()

	fmt.Fprintln(out, "starting etcd ...")
	f.etcd, f.endpoint, err = startEtcd(ctx, dir, etcdBin)
	if err != nil {
		return err
	}
	f.all = append(f.all, f.etcd)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{f.endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()

	primary, standby, stopPair, err := startSyncPair(ctx, out)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopPair()) }()

	fmt.Fprintln(out, "starting three sluices (auto_promote, one promoter through etcd) ...")
	if err := f.startSluices(ctx, fo.Sluice, primary, standby, fo); err != nil {
		return err
	}
	if _, err := waitDecision(ctx, cli, 1, time.Minute); err != nil {
		return err
	}
	fmt.Fprintln(out, "starting HAProxy (TCP, round robin, health check every 500ms) ...")
	f.haproxy, f.lbAddr, f.lbStats, err = startHAProxy(ctx, dir, haproxyBin, f.addrs)
	if err != nil {
		return err
	}
	f.all = append(f.all, f.haproxy)
	fmt.Fprintf(out, `
Three sluices (%s, %s, %s) run in front of a primary (127.0.0.1:%d) and
its synchronous standby (127.0.0.1:%d), with auto_promote; they decide
failover through etcd (%s): one of them leads, the others follow.
HAProxy balances connections over them round robin.

  connect:  psql "postgresql://%s:%s@%s/%s?sslmode=disable"
  try:      SELECT count(*), max(n), inet_server_port() FROM writes;
  etcd:     etcdctl --endpoints=%s get --prefix %s
  files:    %s

A writer opens a connection through HAProxy for every numbered insert,
every %s. After %s the primary is killed with SIGKILL; then one sluice.

`, f.addrs[0], f.addrs[1], f.addrs[2], primary.Port, standby.Port, f.endpoint,
		demoUser, demoPassword, f.lbAddr, demoDB, f.endpoint, fleetPrefix, dir, fo.WriteEvery, fo.KillAfter)

	dsn := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&connect_timeout=10", demoUser, demoPassword, f.lbAddr, demoDB)
	w := &writer{fresh: true}
	wctx, stopWriter := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(wctx, dsn, fo.WriteEvery) }()
	halt := sync.OnceFunc(func() { stopWriter(); wg.Wait() })
	defer halt()
	report := func() { fmt.Fprintln(out, w.line(time.Now())) }

	first, err := w.waitAcks(ctx, 1, 30*time.Second)
	if err != nil {
		return interrupted(ctx, out, fmt.Errorf("demo: no write went through HAProxy and sluice: %w", err))
	}
	if err := tick(ctx, fo.ReportEvery, first.Add(fo.KillAfter), report, nil); err != nil {
		return interrupted(ctx, out, err)
	}
	report()
	fmt.Fprintf(out, "\n=== kill -9 the primary's postmaster (127.0.0.1:%d) ===\n\n", primary.Port)
	killedAt := time.Now()
	if err := primary.Kill(ctx); err != nil {
		return interrupted(ctx, out, err)
	}
	dec, err := waitDecision(ctx, cli, 2, fo.ResumeTimeout)
	if err != nil {
		return interrupted(ctx, out, err)
	}
	decidedIn := time.Since(killedAt)
	fmt.Fprintf(out, "\n=== the fleet decided: epoch %d, new primary %s, promoted by %s, %s after the kill ===\n\n",
		dec.Epoch, dec.Primary, dec.Leader, fmtDur(decidedIn))
	resumed := func() bool { p := w.snapshot(); return p.lastPort != 0 && p.lastPort != primary.Port }
	if err := tick(ctx, fo.ReportEvery, killedAt.Add(fo.ResumeTimeout), report, resumed); err != nil {
		return interrupted(ctx, out, err)
	}
	if !resumed() {
		return fmt.Errorf("demo: writes did not resume within %s of the kill", fo.ResumeTimeout)
	}
	lastBefore, firstAfter := w.snapshot().around(primary.Port)
	if err := tick(ctx, fo.ReportEvery, firstAfter.at.Add(fo.ContinueFor), report, nil); err != nil {
		return interrupted(ctx, out, err)
	}

	victim, vi := f.sluiceByID(dec.Leader)
	report()
	fmt.Fprintf(out, "\n=== kill -9 %s (%s, pid %d), the leader that promoted ===\n\n", victim.name, f.addrs[vi], victim.pid())
	sluiceKilledAt := time.Now()
	ackedAtSluiceKill := w.snapshot().acked
	victim.kill()
	if err := tick(ctx, fo.ReportEvery, time.Now().Add(fo.ContinueFor), report, nil); err != nil {
		return interrupted(ctx, out, err)
	}
	// At least minAfterKill writes through the two survivors, and HAProxy
	// has taken the dead one out, however loaded the machine is.
	carriedOn := func() bool {
		if w.snapshot().acked < ackedAtSluiceKill+minAfterKill {
			return false
		}
		st, err := haproxyStats(f.lbStats, victim.name)
		return err == nil && strings.HasPrefix(st.status, "DOWN")
	}
	if err := tick(ctx, fo.ReportEvery, time.Now().Add(fo.ResumeTimeout), report, carriedOn); err != nil {
		return interrupted(ctx, out, err)
	}
	halt()
	report()
	lbView, err := haproxyStats(f.lbStats, victim.name)
	if err != nil {
		return err
	}

	final := w.snapshot()
	lost, twice, failedPresent, err := checkWrites(ctx, standby, final)
	if err != nil {
		return err
	}
	promotions, by := f.promotions()
	last, err := readDecision(ctx, cli)
	if err != nil {
		return err
	}
	return fleetSummary(out, fleetResult{
		primaryPort: primary.Port, newPrimary: last, promotions: promotions, promotedBy: by,
		decidedIn: decidedIn, outage: firstAfter.at.Sub(lastBefore.at), final: final,
		lost: lost, twice: twice, failedPresent: failedPresent,
		victim: victim.name, refused: final.connectFailsSince(sluiceKilledAt), afterKill: final.acked - ackedAtSluiceKill,
		lb: lbView,
	})
}

// minAfterKill is how many writes the demo waits for after it kills a
// sluice.
const minAfterKill = 10

// fleetResult is what the fleet demo's summary reports.
type fleetResult struct {
	primaryPort                int
	newPrimary                 cluster.Decision
	promotions                 int
	promotedBy                 []string
	decidedIn, outage          time.Duration
	final                      progress
	lost, twice, failedPresent int
	victim                     string
	refused, afterKill         int
	lb                         backendStats // HAProxy's view of the killed sluice
}

func fleetSummary(out io.Writer, r fleetResult) error {
	fmt.Fprintf(out, `
=== summary ===
  writes acknowledged   %d (%d by the old primary, %d by the new one)
  writes failed         %d (in flight when a server or sluice died; never retried; %d of them committed)
  lost                  %d
  duplicated            %d
  fencing epoch         %d (new primary %s, decided by %s)
  promotions            %d (pg_promote calls in the fleet, by %v)
  time without primary  %s (last acknowledged write before the kill to the first after it; the decision took %s)
  sluice killed         %s: %d connection attempts refused after it, %d writes acknowledged by the other two
  HAProxy's view of it  %s; %d connections it refused were sent to another sluice
`, r.final.acked, r.final.on(r.primaryPort), r.final.acked-r.final.on(r.primaryPort),
		len(r.final.failed), r.failedPresent, r.lost, r.twice,
		r.newPrimary.Epoch, r.newPrimary.Primary, r.newPrimary.Leader,
		r.promotions, r.promotedBy, fmtDur(r.outage), fmtDur(r.decidedIn),
		r.victim, r.refused, r.afterKill, r.lb.status, r.lb.redispatches)
	if r.lost > 0 || r.twice > 0 || r.promotions != 1 || r.newPrimary.Epoch != 2 || r.afterKill < minAfterKill {
		fmt.Fprintln(out, "\nFAILED: see the numbers above")
		return errFleetFailed
	}
	fmt.Fprint(out, `
No acknowledged write was lost or duplicated. The three sluices held one
etcd election: only its leader promoted the standby (one pg_promote call,
fencing epoch 1 -> 2), and all three route writes to the primary the
decision names. Killing a sluice only broke the connections it held (a
write in flight there fails and is not retried: it may have committed);
HAProxy sent the connections it refused to another sluice, its health
check took it out, and the other two carried on.
`)
	return nil
}
