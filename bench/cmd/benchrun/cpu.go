package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// cpuUse is the CPU time a pooler process spent during one measurement:
// utime+stime from /proc/PID/stat read just before the client (pgbench, or
// the COPY's pgconn client) started and just after it finished, divided by
// the transactions the client reports. Ticks are coarse (1/CLK_TCK s, 10 ms
// at the usual 100), so only whole runs are measured, never parts of one.
type cpuUse struct {
	Ticks   uint64  // utime+stime after - before, in clock ticks
	Tx      int64   // transactions the client reports for the run
	UsPerTx float64 // Ticks / CLK_TCK / Tx, in µs
}

// clockTick is the unit of utime and stime in /proc/PID/stat.
type clockTick struct {
	hz   int64  // ticks per second
	note string // how hz was found, for the report
}

// clockTicks asks getconf for CLK_TCK (Go has no sysconf without cgo). The
// kernel's USER_HZ is 100 on every mainstream Linux architecture, so 100 is
// the fallback, and the report says when it was assumed.
func clockTicks(ctx context.Context) clockTick {
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err == nil {
		if hz, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && hz > 0 {
			return clockTick{hz: hz, note: fmt.Sprintf("%d (getconf CLK_TCK)", hz)}
		}
	}
	return clockTick{hz: 100, note: "100 (assumed: getconf CLK_TCK failed)"}
}

// parseProcStat returns utime and stime (fields 14 and 15, in clock ticks)
// of a /proc/PID/stat line. Field 2 is the process name in parentheses,
// and the name may itself contain spaces and parentheses, so the fields are
// counted from the last ')'. utime and stime of a process's stat are the
// sums over all its threads (sluice's goroutines run on several).
func parseProcStat(b []byte) (utime, stime uint64, err error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, 0, errors.New("no (comm) field")
	}
	// After ")": field 3 (state) is f[0], so field n is f[n-3].
	f := bytes.Fields(b[end+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the name, want at least 13", len(f))
	}
	if utime, err = strconv.ParseUint(string(f[11]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	if stime, err = strconv.ParseUint(string(f[12]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	return utime, stime, nil
}

// readCPUTicks is utime+stime of pid so far (Linux only: elsewhere there is
// no /proc/PID/stat, and the CPU columns stay empty).
func readCPUTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	u, s, err := parseProcStat(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return u + s, nil
}

// cpuMeter reads a pooler's CPU time before and after one measurement.
// A nil *cpuMeter (direct PostgreSQL, or /proc unreadable) measures nothing.
type cpuMeter struct {
	pid           int
	hz            int64
	before, after uint64
	err           error // reading after failed
}

// startCPU begins measuring the pooler of target (nil for direct PostgreSQL:
// it has no pooler, and its backends' CPU is PostgreSQL's own work, which
// is behind the poolers too and is not what the column compares).
func (e *env) startCPU(target string) *cpuMeter {
	var pid int
	switch target {
	case pgbouncer:
		pid = e.pgb.Pid()
	case sluice:
		pid = e.slc.Pid()
	default:
		return nil
	}
	before, err := readCPUTicks(pid)
	if err != nil {
		logf("pooler CPU not measured: %v", err)
		return nil
	}
	return &cpuMeter{pid: pid, hz: e.clk.hz, before: before}
}

// stop reads the CPU time at the end of the measurement: call it as soon as
// the client has finished, before parsing its output.
func (m *cpuMeter) stop() {
	if m != nil {
		m.after, m.err = readCPUTicks(m.pid)
	}
}

// perTx is the measurement over tx transactions; nil when nothing could be
// measured (no meter, no transactions, or the process was gone).
func (m *cpuMeter) perTx(tx int64) *cpuUse {
	if m == nil || m.err != nil || tx <= 0 || m.after < m.before {
		return nil
	}
	ticks := m.after - m.before
	return &cpuUse{Ticks: ticks, Tx: tx, UsPerTx: float64(ticks) * 1e6 / float64(m.hz) / float64(tx)}
}
