package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// statLine is a /proc/PID/stat line of a process named comm (field 2
// without its parentheses) with the given utime and stime; the other
// fields are those of a real PgBouncer on Linux 6.
func statLine(comm string, utime, stime uint64) string {
	return fmt.Sprintf("41237 (%s) S 41201 41237 12373 0 -1 4194560 1893 0 0 0 %d %d 0 0 20 0 1 0 395054 "+
		"20393984 2510 18446744073709551615 94268570959872 94268570979753 140726851297376 0 0 0 0 4096 "+
		"2048 0 0 0 17 1 0 0 0 0 0 94268570995760 94268570997376 94269032435712 140726851300035 "+
		"140726851300055 140726851300055 140726851301355 0\n", comm, utime, stime)
}

func TestParseProcStat(t *testing.T) {
	for _, comm := range []string{"pgbouncer", "sluice", "a b", "x) S 1 2 3 (y", "((", "))", ""} {
		u, s, err := parseProcStat([]byte(statLine(comm, 417, 233)))
		require.NoError(t, err, comm)
		require.Equal(t, [2]uint64{417, 233}, [2]uint64{u, s}, comm)
	}
	for in, want := range map[string]string{
		"":                                  "no (comm) field",
		"1 pgbouncer S 1 2 3":               "no (comm) field",
		"1 )pgbouncer( S":                   "no (comm) field",
		"1 (pgbouncer) S 1 2 3 4 5 6 7 8":   "9 fields after the name, want at least 13",
		"1 (p) S 1 2 3 4 5 6 7 8 9 10 x 2":  "utime",
		"1 (p) S 1 2 3 4 5 6 7 8 9 10 1 -2": "stime",
	} {
		_, _, err := parseProcStat([]byte(in))
		require.ErrorContains(t, err, want, in)
	}
}

func TestReadCPUTicksOfThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/PID/stat is Linux's")
	}
	before, err := readCPUTicks(os.Getpid())
	require.NoError(t, err)
	after, err := readCPUTicks(os.Getpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, after, before)
	_, err = readCPUTicks(-1)
	require.Error(t, err)
}

func TestCPUMeterPerTx(t *testing.T) {
	// 50 ticks at 100 Hz = 0.5 s over 1,000 transactions = 500 µs each.
	m := &cpuMeter{hz: 100, before: 100, after: 150}
	require.Equal(t, &cpuUse{Ticks: 50, Tx: 1000, UsPerTx: 500}, m.perTx(1000))
	require.Nil(t, m.perTx(0), "no transactions")
	require.Nil(t, (*cpuMeter)(nil).perTx(1000), "direct PostgreSQL")
	require.Nil(t, (&cpuMeter{hz: 100, before: 150, after: 100}).perTx(1000), "another process took the pid")
	require.Nil(t, (&cpuMeter{hz: 100, err: os.ErrNotExist}).perTx(1000), "the pooler exited")
	(*cpuMeter)(nil).stop() // must not panic
	require.Equal(t, "pooler CPU 500.0 µs/tx (50 ticks over 1,000 tx)", m.perTx(1000).String())
}

func TestCPUColumnsAndVerdict(t *testing.T) {
	s := scenarios(10)[0] // scenario 1: both poolers in both modes
	require.Equal(t, "1", s.ID)
	res := newResults()
	cpu := func(us float64) *cpuUse { return &cpuUse{Ticks: 1, Tx: 1, UsPerTx: us} }
	for round, pair := range [][2]float64{{60, 100}, {90, 60}, {40, 100}} {
		res.add("1", vSlcT, round, sample{TPS: 1, CPU: cpu(pair[0])})
		res.add("1", vPgbT, round, sample{TPS: 1, CPU: cpu(pair[1])})
		res.add("1", vDirect, round, sample{TPS: 1})
	}
	res.add("1", vSlcT, 3, sample{TPS: 1})                // CPU not read: left out
	res.add("1", vSlcT, 4, sample{Err: "x", CPU: cpu(1)}) // failed round: left out
	// Per-round ratios 0.6, 1.5, 0.4: the median is 0.6, not 190/260.
	require.InDelta(t, 0.6, res.cpuRatio("1", vSlcT.Key(), vPgbT.Key()), 1e-9)
	require.Equal(t, []string{"60.0 µs (40.0 – 90.0)", "0.60x"}, cpuCells(res, s, vSlcT))
	require.Equal(t, []string{"100.0 µs (60.0 – 100.0)", "–"}, cpuCells(res, s, vPgbT))
	require.Equal(t, []string{"–", "–"}, cpuCells(res, s, vDirect))
	require.Equal(t, []string{"–", "–"}, cpuCells(res, s, vSlcS), "not run")

	vs := cpuVerdicts(res, []scenario{s})
	require.Len(t, vs, 1)
	require.Equal(t, "met", vs[0].Status)
	require.Equal(t, "0.60x (60.0 µs against 100.0 µs)", vs[0].Measured)

	// PgBouncer failed every round (scenario 4's prepared statements): n/a.
	res.samples["1"][vPgbT.Key()] = []sample{{Err: `prepared statement "P_0" already exists`}}
	vs = cpuVerdicts(res, []scenario{s})
	require.Equal(t, "n/a", vs[0].Status)
	require.Contains(t, vs[0].Why, "P_0")
	// Scenarios without both transaction variants get no verdict.
	require.Empty(t, cpuVerdicts(res, scenarios(10)[1:4]))

	table := resultsTable(res, []scenario{s})
	require.Contains(t, table, "| Pooler CPU / tx | CPU / tx vs PgBouncer |")
	for _, l := range strings.Split(strings.TrimSpace(table), "\n") {
		require.Equal(t, 10, strings.Count(l, "|")-strings.Count(l, `\|`), l)
	}
	require.True(t, math.IsNaN(res.cpuRatio("2", vSlcS.Key(), vPgbS.Key())))
}

func FuzzParseProcStat(f *testing.F) {
	f.Add("pgbouncer", uint64(417), uint64(233), []byte(statLine("pgbouncer", 417, 233)))
	f.Add("x) S 1 2 3 (y", uint64(0), uint64(math.MaxUint64), []byte("1 (p) S 1 2 3 4 5 6 7 8 9 10 11"))
	f.Add("a\nb (c)", uint64(1), uint64(2), []byte("1 (a) b) R"))
	f.Fuzz(func(t *testing.T, comm string, utime, stime uint64, raw []byte) {
		// A well-formed line gives back its utime and stime whatever the
		// name holds: spaces, parentheses, newlines.
		u, s, err := parseProcStat([]byte(statLine(comm, utime, stime)))
		if err != nil || u != utime || s != stime {
			t.Fatalf("comm %q: got %d %d %v, want %d %d", comm, u, s, err, utime, stime)
		}
		// Anything else: an error or two numbers, never a panic.
		_, _, _ = parseProcStat(raw)
	})
}

// The method text lives in docIntro and is regenerated into the page; the
// committed page must say the same (it is only rewritten by a full run).
func TestBenchmarksPageHasTheMethodText(t *testing.T) {
	page, err := os.ReadFile("../../../docs/benchmarks.md")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(page), docIntro), "docs/benchmarks.md does not start with docIntro")
}
