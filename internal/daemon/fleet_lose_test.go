package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/peercancel"
	"github.com/sluice-proxy/sluice/internal/testutil/etcdtest"
	"github.com/sluice-proxy/sluice/internal/testutil/haproxytest"
	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// sluiceProcess is a sluice run from the built binary (so that it can
// be killed with SIGKILL).
type sluiceProcess struct {
	id, listen, admin string
	cmd               *exec.Cmd
	logs              *syncbuf.Buffer
	done              chan struct{}
}

func startSluiceProcess(t *testing.T, bin, etcd, id string, budget int) *sluiceProcess {
	t.Helper()
	return startSluiceProcessWith(t, bin, id, nil, func(listen, admin string) string {
		return budgetConfigOn(t, etcd, id, budget, listen, admin)
	})
}

// buildSluice builds cmd/sluice into a temporary directory.
func buildSluice(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sluice").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// startSluiceProcessWith runs bin with the configuration config returns
// for the listen and admin addresses chosen, and env added to the
// test's environment.
func startSluiceProcessWith(t *testing.T, bin, id string, env []string, config func(listen, admin string) string) *sluiceProcess {
	t.Helper()
	p := &sluiceProcess{id: id, listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	path := filepath.Join(t.TempDir(), id+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(config(p.listen, p.admin)), 0o600))
	p.cmd = exec.Command(bin, "run", "--config", path)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	require.NoError(t, p.cmd.Start())
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s's log:\n%s", id, p.logs.String())
		}
	})
	return p
}

// TestLosingAnInstanceLosesOnlyItsTransactions: three sluice processes
// behind HAProxy (round robin, no health checks), a pgx workload of 45
// workers (more than the budget's 30 connections), each running
// one-statement write transactions in a loop (reconnecting through
// HAProxy after an error); kill -9 of one
// instance: only transactions on connections to that instance fail (at
// most one per worker that was on it), the workload continues through
// the two others, every acknowledged write is in the table once, and
// no failed one was acknowledged. The killed instance's share of
// max_db_connections (30: 10 each) goes to the two others when its
// lease expires (15 each); the server never sees more than 30.
func TestLosingAnInstanceLosesOnlyItsTransactions(t *testing.T) {
	etcd := etcdtest.Start(t)
	haproxytest.Find(t)
	bin := buildSluice(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl := pgtest.Cluster(t)
	require.NoError(t, cl.ExecDB(ctx, pgtest.AppDB, "DROP TABLE IF EXISTS losing; CREATE TABLE losing (worker int, seq int, PRIMARY KEY (worker, seq)); GRANT ALL ON losing TO "+pgtest.AppUser))

	procs := []*sluiceProcess{
		startSluiceProcess(t, bin, etcd.Endpoint(), "l1", 30),
		startSluiceProcess(t, bin, etcd.Endpoint(), "l2", 30),
		startSluiceProcess(t, bin, etcd.Endpoint(), "l3", 30),
	}
	f1 := &fleetInstance{admin: "http://" + procs[0].admin}
	var victim uint16
	eventually(t, "the three to register", func() bool {
		code, _ := getQuiet(f1.admin + "/api/peers")
		if code != 200 {
			return false
		}
		ps := peerIDs(f1.apiPeers(t))
		if len(ps) != 3 {
			return false
		}
		victim = uint16(ps["l3"].PeerID)
		return true
	})
	lb := haproxytest.Start(t, procs[0].listen, procs[1].listen, procs[2].listen)
	dsn := fmt.Sprintf("host=127.0.0.1 port=%s user=%s password=%s dbname=%s sslmode=disable connect_timeout=10",
		portOf(lb.Addr()), pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)

	for _, p := range procs[:2] {
		f := &fleetInstance{admin: "http://" + p.admin}
		eventually(t, p.id+"'s share to be 10", func() bool {
			return metricSum(t, f, `sluice_cluster_budget_share{database="`+pgtest.AppDB+`"}`) == 10
		})
	}
	s := startSampler(t)

	const workers = 45
	var (
		ok, failed, failedElsewhere, connectFailures atomic.Int64
		ackd                                         [workers]atomic.Int64 // acknowledged writes per worker (seq 1..n)
		tried                                        [workers]atomic.Int64 // seqs sent that failed: may or may not be in the table
		killed                                       atomic.Bool
		okAfter                                      [workers]atomic.Int64
		onPeer                                       [workers]atomic.Int32 // the peer number of the worker's instance now
		stop                                         = make(chan struct{})
		wg                                           sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn *pgconn.PgConn
			defer func() {
				if conn != nil {
					conn.Close(context.Background())
				}
			}()
			seq := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				if conn == nil {
					c, err := pgconn.Connect(ctx, dsn)
					if err != nil {
						connectFailures.Add(1) // HAProxy sent it to the dead instance: try again
						time.Sleep(20 * time.Millisecond)
						continue
					}
					conn = c
				}
				peer, _ := peercancel.PeerOf(conn.PID())
				onPeer[w].Store(int32(peer))
				seq++
				_, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO losing VALUES (%d, %d)", w, seq)).ReadAll()
				if err != nil {
					failed.Add(1)
					tried[w].Add(1)
					if peer != victim || !killed.Load() {
						failedElsewhere.Add(1)
						t.Errorf("worker %d: a transaction on peer %d failed (victim %d, killed %v): %v", w, peer, victim, killed.Load(), err)
					}
					conn.Close(context.Background())
					conn = nil
					continue
				}
				ok.Add(1)
				ackd[w].Add(1)
				if killed.Load() {
					okAfter[w].Add(1)
				}
			}
		}()
	}
	eventually(t, "the workload to run on all three", func() bool { return ok.Load() >= 600 })
	onVictim := 0
	for w := range workers {
		if onPeer[w].Load() == int32(victim) {
			onVictim++
		}
	}
	killed.Store(true)
	require.NoError(t, procs[2].cmd.Process.Signal(syscall.SIGKILL))
	<-procs[2].done
	okAtKill := ok.Load()
	eventually(t, "every worker to go on through the live instances", func() bool {
		for w := range workers {
			if okAfter[w].Load() < 30 {
				return false
			}
		}
		return true
	})
	for _, p := range procs[:2] {
		f := &fleetInstance{admin: "http://" + p.admin}
		eventually(t, p.id+" to take its part of the killed instance's share when its lease expires", func() bool {
			return metricSum(t, f, `sluice_cluster_budget_share{database="`+pgtest.AppDB+`"}`) == 15
		})
	}
	close(stop)
	wg.Wait()
	peak, samples := s.end()
	t.Logf("peak %d server connections over %d samples (max_db_connections 30)", peak, samples)
	require.LessOrEqual(t, peak, int64(30))

	rows, err := cl.QueryDB(ctx, pgtest.AppDB, "SELECT count(*) FROM losing")
	require.NoError(t, err)
	inTable, err := strconv.Atoi(rows[0][0])
	require.NoError(t, err)
	t.Logf("%d of %d workers were connected to the killed instance", onVictim, workers)
	t.Logf("transactions: %d ok (%d before the kill, %d after), %d failed (all on the killed instance: %v), %d connections refused while HAProxy still tried the dead instance; %d rows in the table",
		ok.Load(), okAtKill, ok.Load()-okAtKill, failed.Load(), failedElsewhere.Load() == 0, connectFailures.Load(), inTable)
	require.Zero(t, failedElsewhere.Load(), "only the killed instance's transactions fail")
	require.LessOrEqual(t, failed.Load(), int64(onVictim), "at most one transaction per worker that was on the killed instance is lost")
	require.GreaterOrEqual(t, int64(inTable), ok.Load(), "an acknowledged write was lost")
	require.LessOrEqual(t, int64(inTable), ok.Load()+failed.Load(), "a write that was never sent is in the table")
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}

// getQuiet is get without failing the test (an instance still starting).
func getQuiet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
