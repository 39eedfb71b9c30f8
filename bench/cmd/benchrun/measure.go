package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// sample is one measurement of one variant in one round. Which fields are
// set depends on the scenario's kind; Err marks a failed run.
type sample struct {
	TPS        float64 `json:"tps,omitempty"`
	LatencyMs  float64 `json:"latency_ms,omitempty"`
	P99Ms      float64 `json:"p99_ms,omitempty"`
	MBps       float64 `json:"mb_per_s,omitempty"`
	KBPerConn  float64 `json:"kb_per_client,omitempty"`       // pooler RSS / clients
	KBDeltaPer float64 `json:"kb_delta_per_client,omitempty"` // (RSS with clients - RSS before) / clients
	RSSKB      int64   `json:"rss_kb,omitempty"`
	CPU        *cpuUse `json:"cpu,omitempty"` // pooler CPU time; nil for direct or when not measured
	Err        string  `json:"error,omitempty"`
}

// pgbenchArgs is the full pgbench command line (without the binary) for a
// variant of s; logPrefix is used when s.LogLatency.
func (e *env) pgbenchArgs(s scenario, v variant, logPrefix string) []string {
	args := append([]string{}, s.Args...)
	args = append(args, "-n", "-T", strconv.Itoa(e.cfg.seconds+s.ConnectSeconds))
	if s.LogLatency {
		args = append(args, "-l", "--log-prefix="+logPrefix)
	}
	return append(args, "-h", "127.0.0.1", "-p", strconv.Itoa(e.port(v.Target)), "-U", s.User, dbFor(v.Target, v.Mode))
}

// runPgbench runs one pgbench measurement.
func (e *env) runPgbench(ctx context.Context, s scenario, v variant) sample {
	prefix := filepath.Join(e.cfg.workDir, "pgbench_log_"+s.ID)
	args := e.pgbenchArgs(s, v, prefix)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(e.cfg.seconds+s.ConnectSeconds)*time.Second+3*time.Minute)
	defer cancel()
	cpu := e.startCPU(v.Target)
	out, err := e.cluster.PgbenchEnv(ctx, []string{"PGPASSWORD=" + passwords[s.User]}, args...)
	cpu.stop()
	if s.LogLatency {
		defer removeGlob(prefix + ".*")
	}
	if err != nil {
		return sample{Err: shortErr(string(out), err)}
	}
	r, err := parsePgbench(string(out))
	if err != nil {
		return sample{Err: err.Error() + ": " + tail(string(out))}

	}
	sm := sample{TPS: r.TPS, LatencyMs: r.LatencyMs, CPU: cpu.perTx(r.Processed)}
	if r.Failed > 0 {
		sm.Err = fmt.Sprintf("%d failed transactions", r.Failed)
	}
	if s.LogLatency {
		if sm.P99Ms, err = p99FromLogs(prefix); err != nil {
			sm.Err = "p99: " + err.Error()
		}
	}
	return sm
}

// countWriter discards what it is given and counts it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// runCopy times one COPY (SELECT repeat('x', 1000) ...) TO STDOUT through
// the variant with pgconn, discarding the data: MB/s = bytes / 1e6 / s.
// The pooler's CPU time is measured over the whole COPY, one transaction.
func (e *env) runCopy(ctx context.Context, s scenario, v variant) sample {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cpu := e.startCPU(v.Target)
	c, err := pgconn.Connect(ctx, e.dsn(v.Target, v.Mode, s.User))
	if err != nil {
		return sample{Err: err.Error()}
	}
	defer c.Close(context.Background())
	var w countWriter
	began := time.Now()
	_, err = c.CopyTo(ctx, &w, e.copySQL())
	secs := time.Since(began).Seconds()
	cpu.stop()
	if err != nil {
		return sample{Err: err.Error()}
	}
	return sample{MBps: float64(w.n) / 1e6 / secs, CPU: cpu.perTx(1)}
}

func (e *env) copySQL() string {
	return fmt.Sprintf("COPY (SELECT repeat('x', 1000) FROM generate_series(1, %d)) TO STDOUT", e.cfg.copyRows)
}

// idleResult is the JSON line bench/cmd/idleclients prints.
type idleResult struct {
	Clients        int     `json:"clients"`
	RSSBeforeKB    int64   `json:"rss_before_kb"`
	RSSAfterKB     int64   `json:"rss_after_kb"`
	KBPerClient    float64 `json:"kb_per_client"`
	KBDeltaPer     float64 `json:"kb_delta_per_client"`
	ConnectSeconds float64 `json:"connect_seconds"`
}

// runIdle runs bench/cmd/idleclients against the variant's pooler.
func (e *env) runIdle(ctx context.Context, s scenario, v variant) sample {
	pid := e.pgb.Pid()
	if v.Target == sluice {
		pid = e.slc.Pid()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cfg.idleBin, "-dsn", e.dsn(v.Target, v.Mode, s.User),
		"-n", strconv.Itoa(e.cfg.idleClients), "-pid", strconv.Itoa(pid))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return sample{Err: fmt.Sprintf("idleclients: %v", err)}
	}
	var r idleResult
	if err := json.Unmarshal(out, &r); err != nil {
		return sample{Err: fmt.Sprintf("idleclients output %q: %v", out, err)}
	}
	return sample{KBPerConn: r.KBPerClient, KBDeltaPer: r.KBDeltaPer, RSSKB: r.RSSAfterKB}
}

// shortErr condenses a failed command's output to its most telling line.
func shortErr(out string, err error) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "ERROR") || strings.Contains(l, "error") || strings.Contains(l, "FATAL") {
			if len(l) > 160 {
				l = l[:160] + "..."
			}
			return l
		}
	}
	return firstLine(err.Error())
}

func removeGlob(pattern string) {
	files, _ := filepath.Glob(pattern)
	for _, f := range files {
		os.Remove(f)
	}
}

// tail is the end of a command's output, on one line.
func tail(out string) string {
	out = strings.Join(strings.Fields(out), " ")
	if len(out) > 300 {
		out = "..." + out[len(out)-300:]
	}
	return out
}
