#!/usr/bin/env bash
# make bench: PostgreSQL vs PgBouncer vs sluice on loopback. See
# docs/benchmarks.md. Knobs (environment): BENCH_TIME (s per pgbench run,
# default 8), BENCH_ROUNDS (3), BENCH_SCALE (10), BENCH_IDLE_CLIENTS (10000),
# BENCH_COPY_ROWS (1000000), BENCH_ONLY (e.g. 1,5), BENCH_MICRO (0 skips the
# Go micro-benchmarks), BENCH_DOC (report file, default docs/benchmarks.md;
# empty = stdout only).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
started=$(date +%s)

need_pkg() { # need_pkg BINARY PACKAGE: apt-get install PACKAGE when BINARY is missing
	if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then return; fi
	echo "bench: $1 not found, installing $2" >&2
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2 ||
		{ $sudo apt-get update >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2; }
}
need_pkg pgbouncer pgbouncer
need_pkg psql postgresql
export PATH="/usr/sbin:$PATH"

# 10,000 idle clients need a descriptor each, in the client and the pooler.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

# Scratch space the postgres OS user can reach; removed on exit together with
# anything still running from it (PgBouncer and sluice die with benchrun via
# Pdeathsig; PostgreSQL is daemonised, so stop it here if benchrun could not).
work=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$work"
cleanup() {
	local pidfile pid
	for pidfile in "$work"/sluice-pg-*/data/postmaster.pid; do
		[ -f "$pidfile" ] || continue
		pid=$(head -1 "$pidfile")
		echo "bench: stopping leftover PostgreSQL $pid" >&2
		kill -QUIT "$pid" 2>/dev/null || true
	done
	# Keep the poolers' logs of the last run for post-mortems.
	rm -rf /tmp/sluice-bench-last && mkdir -p /tmp/sluice-bench-last &&
		cp "$work"/*.log /tmp/sluice-bench-last/ 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/bin/" ./bench/cmd/benchrun ./bench/cmd/idleclients
set +e
"$work/bin/benchrun" -dir "$work" -sluice bin/sluice -idleclients "$work/bin/idleclients" \
	-doc "${BENCH_DOC-docs/benchmarks.md}" -command "make bench" "$@"
rc=$?
set -e
echo "bench: finished in $(($(date +%s) - started))s (exit $rc)" >&2
exit $rc
