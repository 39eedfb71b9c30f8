package main

// Target names, in the order each round runs them (A B C A B C ...).
const (
	direct    = "direct"
	pgbouncer = "pgbouncer"
	sluice    = "sluice"
)

// Pool modes. A variant's mode picks the database alias on the poolers
// ("bench" is the session pool, "bench_tx" the transaction pool); direct
// PostgreSQL has no mode.
const (
	session     = "session"
	transaction = "transaction"
)

// Scenario kinds: how a variant is measured.
const (
	kindPgbench = "pgbench" // tps and average latency from pgbench
	kindCopy    = "copy"    // MB/s of one large COPY ... TO STDOUT
	kindIdle    = "idle"    // kB of pooler RSS per idle client
)

// variant is one thing measured in a round: a target, and for poolers the
// pool mode.
type variant struct {
	Target string
	Mode   string // "" for direct
}

// Key names the variant in results and tables, e.g. "sluice/session".
func (v variant) Key() string {
	if v.Mode == "" {
		return v.Target
	}
	return v.Target + "/" + v.Mode
}

// Label is the human name used in the Markdown table.
func (v variant) Label() string {
	names := map[string]string{direct: "direct PostgreSQL", pgbouncer: "PgBouncer", sluice: "sluice"}
	if v.Mode == "" {
		return names[v.Target]
	}
	return names[v.Target] + " (" + v.Mode + ")"
}

// scenario is one row group of the report. To enable a variant for sluice
// later (e.g. when transaction pooling lands), nothing here changes: sluice
// variants in transaction mode run as soon as `sluice check-config` accepts
// pool_mode: transaction (see sluiceSupports).
type scenario struct {
	ID       string
	Title    string
	Kind     string
	Args     []string // pgbench workload flags (no connection flags, no -T)
	User     string   // role the clients log in as
	Variants []variant
	// DirectNA, when set, is why direct PostgreSQL is not measured.
	DirectNA string
	// ConnectSeconds is added to -T: pgbench opens all its connections
	// inside the -T window (1,000 SCRAM logins take about 6s here) and
	// reports tps "without initial connection time".
	ConnectSeconds int
	// LogLatency makes pgbench write per-transaction logs for p99 latency.
	LogLatency bool
	// Once: measure in the first round only (deterministic quantities).
	Once bool
}

var (
	vDirect = variant{Target: direct}
	vPgbS   = variant{Target: pgbouncer, Mode: session}
	vSlcS   = variant{Target: sluice, Mode: session}
	vPgbT   = variant{Target: pgbouncer, Mode: transaction}
	vSlcT   = variant{Target: sluice, Mode: transaction}
)

// scenarios returns the suite of the issue, numbered as there. clients is
// the idle-client count of scenario 7.
func scenarios(idleClients int) []scenario {
	return []scenario{
		{ID: "1", Title: "select only, 50 clients (`-S -c 50 -j 2`)", Kind: kindPgbench,
			Args: []string{"-S", "-c", "50", "-j", "2"}, User: userSCRAM,
			Variants: []variant{vDirect, vPgbS, vSlcS, vPgbT, vSlcT}},
		{ID: "2", Title: "writes, 50 clients (`-N -c 50 -j 2`)", Kind: kindPgbench,
			Args: []string{"-N", "-c", "50", "-j", "2"}, User: userSCRAM,
			Variants: []variant{vDirect, vPgbS, vSlcS}},
		{ID: "3a", Title: "new connection per transaction, SCRAM (`-S -C -c 50 -j 2`)", Kind: kindPgbench,
			Args: []string{"-S", "-C", "-c", "50", "-j", "2"}, User: userSCRAM,
			Variants: []variant{vDirect, vPgbS, vSlcS}},
		{ID: "3b", Title: "new connection per transaction, md5 (`-S -C -c 50 -j 2`)", Kind: kindPgbench,
			Args: []string{"-S", "-C", "-c", "50", "-j", "2"}, User: userMD5,
			Variants: []variant{vDirect, vPgbS, vSlcS}},
		{ID: "4", Title: "prepared, 100 clients (`-S -M prepared -c 100 -j 2`)", Kind: kindPgbench,
			Args: []string{"-S", "-M", "prepared", "-c", "100", "-j", "2"}, User: userSCRAM,
			Variants: []variant{vDirect, vPgbT, vSlcT}},
		{ID: "5", Title: "one client, added latency (`-S -c 1 -j 1`)", Kind: kindPgbench,
			Args: []string{"-S", "-c", "1", "-j", "1"}, User: userSCRAM,
			Variants: []variant{vDirect, vPgbS, vSlcS, vPgbT, vSlcT}},
		{ID: "6", Title: "1,000 clients over 20 server connections (`-S -c 1000 -j 2`)", Kind: kindPgbench,
			Args: []string{"-S", "-c", "1000", "-j", "2"}, User: userSCRAM,
			Variants: []variant{vDirect, vPgbT, vSlcT}, LogLatency: true, ConnectSeconds: 15,
			DirectNA: "n/a (would need 1,000 server connections)"},
		{ID: "7", Title: fmtNum(float64(idleClients), 0) + " idle authenticated clients (bench/cmd/idleclients)", Kind: kindIdle,
			User: userSCRAM, Variants: []variant{vDirect, vPgbT, vSlcT}, Once: true,
			DirectNA: "n/a (would need " + fmtNum(float64(idleClients), 0) + " server connections)"},
		{ID: "8", Title: "~1 GB result, `COPY (SELECT repeat('x', 1000) FROM generate_series(1, N)) TO STDOUT`", Kind: kindCopy,
			User: userSCRAM, Variants: []variant{vDirect, vPgbS, vSlcS}},
	}
}
