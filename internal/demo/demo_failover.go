package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/daemon"
	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// FailoverOptions tune `sluice demo --failover`. Zero fields take the
// defaults in brackets.
type FailoverOptions struct {
	WriteEvery   time.Duration // pause between two inserts [100ms]
	KillAfter    time.Duration // writes before the primary is killed [5s]
	ContinueFor  time.Duration // writes after they resume, before the summary [5s]
	ReportEvery  time.Duration // how often the counter line is printed [1s]
	PromoteAfter time.Duration // failover.promote_after [2s]
	HealthCheck  time.Duration // health_check_interval [500ms]
	// ResumeTimeout bounds the wait for writes to resume [60s].
	ResumeTimeout time.Duration
	// Hold keeps sluice and the new primary running after the summary,
	// until Ctrl-C.
	Hold bool
}

func (f *FailoverOptions) withDefaults() FailoverOptions {
	o := FailoverOptions{}
	if f != nil {
		o = *f
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.WriteEvery, 100*time.Millisecond)
	def(&o.KillAfter, 5*time.Second)
	def(&o.ContinueFor, 5*time.Second)
	def(&o.ReportEvery, time.Second)
	def(&o.PromoteAfter, 2*time.Second)
	def(&o.HealthCheck, 500*time.Millisecond)
	def(&o.ResumeTimeout, 60*time.Second)
	return o
}

const (
	monitorUser     = "monitor"
	monitorPassword = "monitor_pw"
)

// ErrWritesLost is returned by the failover demo when an acknowledged
// write is missing from the new primary.
var ErrWritesLost = errors.New("demo: acknowledged writes were lost")

// runFailover is `sluice demo --failover`: a primary, a synchronous
// streaming standby and sluice in front (transaction mode, auto_promote);
// a writer inserting a numbered row every WriteEvery through sluice; the
// primary killed with SIGKILL after KillAfter; sluice promotes the standby
// and the writes continue; after ContinueFor a summary checks every
// acknowledged row on the new primary.
func runFailover(ctx context.Context, o Options) (err error) {
	f := o.Failover.withDefaults()
	out := o.Out
	if _, err := pgserver.FindBinDir(); err != nil {
		return err
	}
	primary, standby, stopPair, err := startSyncPair(ctx, out)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopPair()) }()

	sockDir, err := os.MkdirTemp("", "sluice-demo-sock-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	port, adminPort := pick(o.Port, 6432), pick(o.AdminPort, 9930)
	cfgText := fmt.Sprintf(`listen:
  address: 127.0.0.1:%d
  socket_dir: %s
admin:
  address: 127.0.0.1:%d
log:
  level: warn
shutdown_timeout: 2s
users:
  - name: %s
    password: %s
  - name: %s
    password: %s
databases:
  %s:
    hosts: ["127.0.0.1:%d", "127.0.0.1:%d"]
    pool_mode: transaction
    health_check_interval: %s
    pool:
      min_size: 1
      max_size: 10
      borrow_timeout: 60s
    backend:
      dial_timeout: 2s
    failover:
      user: %s
      auto_promote: true
      promote_after: %s
`, port, sockDir, adminPort, demoUser, demoPassword, monitorUser, monitorPassword, demoDB,
		primary.Port, standby.Port, f.HealthCheck, monitorUser, f.PromoteAfter)
	cfgPath := filepath.Join(sockDir, "sluice.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	d, err := daemon.Start(cfg, cfgPath, o.LogOut)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			d.Shutdown()
		}
	}()
	fmt.Fprintf(out, `
sluice is running in front of a primary (127.0.0.1:%d) and its synchronous
streaming standby (127.0.0.1:%d), in transaction mode, with
failover.auto_promote on (promote_after %s, health_check_interval %s).

  connect:  psql "postgresql://%s:%s@127.0.0.1:%d/%s?sslmode=disable"
  try:      SELECT count(*), max(n), inet_server_port() FROM writes;
  metrics:  http://127.0.0.1:%d/metrics
  config:   %s

A writer inserts a numbered row through sluice every %s. After %s the
primary is killed with SIGKILL; sluice promotes the standby and the writes
continue.

`, primary.Port, standby.Port, f.PromoteAfter, f.HealthCheck, demoUser, demoPassword, port, demoDB,
		adminPort, cfgPath, f.WriteEvery, f.KillAfter)

	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=10",
		port, demoUser, demoPassword, demoDB)
	w := &writer{}
	wctx, stopWriter := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(wctx, dsn, f.WriteEvery) }()
	writerStopped := false
	halt := func() {
		if !writerStopped {
			writerStopped = true
			stopWriter()
			wg.Wait()
		}
	}
	defer halt()

	report := func() { fmt.Fprintln(out, w.line(time.Now())) }
	// Until KillAfter has passed since the first acknowledged write.
	first, err := w.waitAcks(ctx, 1, 30*time.Second)
	if err != nil {
		return interrupted(ctx, out, fmt.Errorf("demo: no write went through sluice: %w", err))
	}
	if err := tick(ctx, f.ReportEvery, first.Add(f.KillAfter), report, nil); err != nil {
		return interrupted(ctx, out, err)
	}

	report()
	fmt.Fprintf(out, "\n=== kill -9 the primary's postmaster (127.0.0.1:%d) ===\n\n", primary.Port)
	killedAt := time.Now()
	if err := primary.Kill(ctx); err != nil {
		return interrupted(ctx, out, err)
	}
	// Writes have resumed once one is acknowledged by another server (one
	// in flight at the kill may still be acknowledged by the old primary).
	resumed := func() bool { p := w.snapshot(); return p.lastPort != 0 && p.lastPort != primary.Port }
	if err := tick(ctx, f.ReportEvery, killedAt.Add(f.ResumeTimeout), report, resumed); err != nil {
		return interrupted(ctx, out, err)
	}
	if !resumed() {
		return fmt.Errorf("demo: writes did not resume within %s of the kill", f.ResumeTimeout)
	}
	lastBefore, firstAfter := w.snapshot().around(primary.Port)
	fmt.Fprintf(out, "\n=== writes resumed on 127.0.0.1:%d, %s after the kill: sluice promoted the standby ===\n\n",
		firstAfter.port, fmtDur(firstAfter.at.Sub(killedAt)))
	report()
	if err := tick(ctx, f.ReportEvery, firstAfter.at.Add(f.ContinueFor), report, nil); err != nil {
		return interrupted(ctx, out, err)
	}
	halt()
	report()

	// Every acknowledged row must be on the new primary, once.
	final := w.snapshot()
	inRecovery, err := standby.InRecovery(ctx)
	if err != nil {
		return err
	}
	lost, twice, failedPresent, err := checkWrites(ctx, standby, final)
	if err != nil {
		return err
	}
	role := "primary"
	if inRecovery {
		role = "STILL A STANDBY"
	}
	fmt.Fprintf(out, `
=== summary ===
  primary killed        %s (kill -9 of 127.0.0.1:%d)
  write outage          %s (last acknowledged write before the kill to the first after it)
  new primary           127.0.0.1:%d, now a %s, promoted by sluice (auto_promote, promote_after %s)
  writes acknowledged   %d (%d by the old primary, %d by the new one)
  on the new primary    %d of %d acknowledged writes present, %d twice
`, killedAt.Format("15:04:05.000"), primary.Port, fmtDur(firstAfter.at.Sub(lastBefore.at)),
		standby.Port, role, f.PromoteAfter, final.acked, final.on(primary.Port), final.acked-final.on(primary.Port),
		final.acked-lost, final.acked, twice)
	if len(final.failed) > 0 {
		fmt.Fprintf(out, "  writes that failed    %d (in flight when the primary died; never retried since they may have committed; %d of them present)\n",
			len(final.failed), failedPresent)
	}
	if lost > 0 || twice > 0 || inRecovery {
		fmt.Fprintf(out, "\nFAILED: %d acknowledged writes lost, %d present twice\n", lost, twice)
		return ErrWritesLost
	}
	fmt.Fprint(out, `
No acknowledged write was lost. Replication is synchronous
(synchronous_standby_names='*', synchronous_commit=on): the primary
acknowledges a commit only once the standby has it, so a write the writer
saw succeed survives the primary's death. sluice queued the writes while no
primary answered, then sent them to the promoted standby.
`)
	if final.connects == 1 {
		fmt.Fprintln(out, "The writer kept its one connection to sluice throughout.")
	}
	if f.Hold {
		fmt.Fprintf(out, "\nStill running on the new primary; connect with the psql line above. Ctrl-C to stop.\n")
		stopped = true
		d.Wait(ctx)
	}
	return nil
}

// interrupted turns an error caused by Ctrl-C into a clean exit.
func interrupted(ctx context.Context, out io.Writer, err error) error {
	if ctx.Err() != nil {
		fmt.Fprintln(out, "interrupted")
		return nil
	}
	return err
}

// tick calls report every period until deadline, until done() is true, or
// until ctx ends (then it returns ctx's error).
func tick(ctx context.Context, period time.Duration, deadline time.Time, report func(), done func() bool) error {
	t := time.NewTicker(period)
	defer t.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end.C:
			return nil
		case <-t.C:
			report()
		case <-poll.C:
			if done != nil && done() {
				return nil
			}
		}
	}
}
