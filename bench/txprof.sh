#!/usr/bin/env bash
# bench/txprof.sh: where does a pooled transaction's time go? Runs pgbench
# -S through PgBouncer and sluice (transaction and session mode), rounds
# interleaved, and prints per transaction: the pooler's CPU (utime+stime
# from /proc/PID/stat), its context switches (summed over its threads from
# /proc/PID/task/*/status), and for sluice its Go allocations
# (go_memstats_mallocs_total on /metrics). Optional: a CPU profile of
# sluice (TXPROF_PPROF=path) and syscall counts (TXPROF_STRACE=1, strace -c
# -f on a separate run: strace slows the pooler, only the counts matter).
#
# Knobs: TXPROF_CLIENTS ("1 50"), TXPROF_TIME (s per run, 4), TXPROF_ROUNDS
# (3), TXPROF_WARM (s left out at the start of runs of 200 clients or
# more, whose logins would dominate: 5), TXPROF_POOL (server connections of the transaction pools, 20;
# session pools have 100), TXPROF_TARGETS ("pgb-tx slc-tx
# slc-sess pgb-sess"), SLUICE_BIN (bin/sluice, built if missing),
# SLUICE_BIN2 (a second sluice build, e.g. a prototype, measured in the
# same rounds as targets s2-tx and s2-sess).
# Trust authentication everywhere: logins are not what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/lib/postgresql/15/bin:/usr/sbin:$PATH"
clients=${TXPROF_CLIENTS:-1 50}
secs=${TXPROF_TIME:-4}
rounds=${TXPROF_ROUNDS:-3}
poolsz=${TXPROF_POOL:-20}
targets=${TXPROF_TARGETS:-pgb-tx slc-tx slc-sess pgb-sess}
bin=${SLUICE_BIN:-bin/sluice}
[ -x "$bin" ] || CGO_ENABLED=0 go build -o "$bin" ./cmd/sluice
bin=$(readlink -f "$bin")

w=$(mktemp -d /tmp/txprof.XXXXXX)
chmod 755 "$w"
pgport=$((20000 + RANDOM % 10000)); pgbport=$((pgport + 1)); slcport=$((pgport + 2)); admport=$((pgport + 3))
s2port=$((pgport + 4)); s2adm=$((pgport + 5))
asPG() { if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
cleanup() {
	[ -n "${slcpid:-}" ] && kill -INT "$slcpid" 2>/dev/null && wait "$slcpid" 2>/dev/null || true
	[ -n "${s2pid:-}" ] && kill -INT "$s2pid" 2>/dev/null && wait "$s2pid" 2>/dev/null || true
	[ -n "${pgbpid:-}" ] && kill "$pgbpid" 2>/dev/null || true
	asPG "pg_ctl -D $w/data -m immediate stop" >/dev/null 2>&1 || true
	rm -rf "$w"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres "$w"
asPG "initdb -D $w/data -A trust -U postgres" >/dev/null
asPG "pg_ctl -D $w/data -l $w/pg.log -o '-p $pgport -k $w -c fsync=off -c synchronous_commit=off -c max_connections=200' -w start" >/dev/null
createdb -h 127.0.0.1 -p "$pgport" -U postgres bench
pgbench -i -q -s 10 -h 127.0.0.1 -p "$pgport" -U postgres bench >/dev/null 2>&1

cat >"$w/pgbouncer.ini" <<INI
[databases]
sess = host=127.0.0.1 port=$pgport dbname=bench pool_mode=session pool_size=100
tx = host=127.0.0.1 port=$pgport dbname=bench pool_mode=transaction pool_size=$poolsz
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgbport
unix_socket_dir =
auth_type = trust
auth_file = $w/userlist.txt
default_pool_size = 100
max_client_conn = 12000
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
log_stats = 0
INI
echo '"postgres" ""' >"$w/userlist.txt"
[ "$(id -u)" -eq 0 ] && chown postgres "$w"/pgbouncer.ini "$w"/userlist.txt
if [ "$(id -u)" -eq 0 ]; then
	su postgres -s /bin/bash -c "exec pgbouncer $w/pgbouncer.ini" >"$w/pgb.log" 2>&1 &
	sleep 0.5; pgbpid=$(pgrep -n -u postgres -x pgbouncer)
else
	pgbouncer "$w/pgbouncer.ini" >"$w/pgb.log" 2>&1 & pgbpid=$!
fi
cat >"$w/sluice.yaml" <<YAML
listen:
  address: 127.0.0.1:$slcport
admin:
  address: 127.0.0.1:$admport
log:
  level: warn
limits:
  max_client_connections: 12000
shutdown_timeout: 1s
users:
  - name: postgres
    auth_method: trust
databases:
  sess:
    hosts: ["127.0.0.1:$pgport"]
    dbname: bench
    pool_mode: session
    pool:
      max_size: 100
  tx:
    hosts: ["127.0.0.1:$pgport"]
    dbname: bench
    pool_mode: transaction
    pool:
      max_size: $poolsz
YAML
SLUICE_CPUPROFILE=${TXPROF_PPROF:-} "$bin" run --config "$w/sluice.yaml" 2>"$w/sluice.log" &
slcpid=$!
if [ -n "${SLUICE_BIN2:-}" ]; then
	sed "s/127.0.0.1:$slcport/127.0.0.1:$s2port/; s/127.0.0.1:$admport/127.0.0.1:$s2adm/" "$w/sluice.yaml" >"$w/sluice2.yaml"
	"$(readlink -f "$SLUICE_BIN2")" run --config "$w/sluice2.yaml" 2>"$w/sluice2.log" &
	s2pid=$!
	sleep 1
fi
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$slcport" && pg_isready -q -h 127.0.0.1 -p "$pgbport" && break; sleep 0.2; done

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt/{v+=$2} /^nonvoluntary_ctxt/{n+=$2} END{print v, n}'; }
mallocs() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^go_memstats_mallocs_total /{printf "%d", $2}'; }
hz=$(getconf CLK_TCK)
run() { # run TARGET CLIENTS
	local t=$1 c=$2 port db pid adm=
	case $t in
	pgb-*) port=$pgbport pid=$pgbpid ;;
	slc-*) port=$slcport pid=$slcpid adm=$admport ;;
	s2-*) port=$s2port pid=$s2pid adm=$s2adm ;;
	esac
	case $t in *-tx) db=tx ;; *) db=sess ;; esac
	local t0 cs0 m0=0 t1 cs1 m1=0 out tx lat warm=0
	[ "$c" -ge 200 ] && warm=${TXPROF_WARM:-5}
	[ -n "$adm" ] && m0=$(mallocs "$adm")
	if [ "$warm" -gt 0 ]; then
		# Many clients: their logins would dominate the run. Measure from
		# warm s after the start, counting transactions from pgbench's
		# per-second progress lines.
		pgbench -n -S -c "$c" -j 2 -T $((warm + secs)) -P 1 -h 127.0.0.1 -p "$port" -U postgres "$db" >"$w/run.out" 2>&1 &
		local bp=$!
		sleep "$warm"
		[ -n "$adm" ] && m0=$(mallocs "$adm")
		t0=$(ticks "$pid"); cs0=$(ctxsw "$pid")
		wait "$bp" || true
		t1=$(ticks "$pid"); cs1=$(ctxsw "$pid")
		[ -n "$adm" ] && m1=$(mallocs "$adm")
		out=$(cat "$w/run.out")
		tx=$(awk -v from="$warm" '/^progress:/{s=$2+0; if (s > from) n += $4} END{printf "%d", n}' <<<"$out")
	else
		t0=$(ticks "$pid"); cs0=$(ctxsw "$pid")
		out=$(pgbench -n -S -c "$c" -j "$(( c > 1 ? 2 : 1 ))" -T "$secs" -h 127.0.0.1 -p "$port" -U postgres "$db" 2>&1)
		t1=$(ticks "$pid"); cs1=$(ctxsw "$pid")
		[ -n "$adm" ] && m1=$(mallocs "$adm")
		tx=$(awk '/actually processed/{print $NF}' <<<"$out")
	fi
	lat=$(awk '/latency average/{print $4}' <<<"$out")
	awk -v t="$t" -v c="$c" -v tx="$tx" -v s="$secs" -v lat="$lat" -v dt=$((t1 - t0)) -v hz="$hz" \
		-v v0="${cs0% *}" -v n0="${cs0#* }" -v v1="${cs1% *}" -v n1="${cs1#* }" -v m=$((m1 - m0)) 'BEGIN{
		printf "%-9s c=%-4d %8.0f tps  lat %6s ms  cpu %6.1f us/tx  vcsw %5.2f/tx  ivcsw %5.2f/tx  allocs %5.1f/tx\n",
			t, c, tx/s, lat, dt*1e6/hz/tx, (v1-v0)/tx, (n1-n0)/tx, m/tx }'
}
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) nproc $(nproc); pool $poolsz; ${secs}s x $rounds rounds"
for c in $clients; do
	for r in $(seq "$rounds"); do
		for t in $targets; do run "$t" "$c"; done
	done
done
if [ -n "${TXPROF_STRACE:-}" ]; then
	for c in $clients; do
		for t in pgb-tx slc-tx; do
			case $t in pgb-*) pid=$pgbpid port=$pgbport ;; *) pid=$slcpid port=$slcport ;; esac
			timeout 20 strace -c -f -p "$pid" -o "$w/strace.$t.$c" &
			sp=$!; sleep 1
			out=$(pgbench -n -S -c "$c" -j "$(( c > 1 ? 2 : 1 ))" -t $((2000 / c + 1)) -h 127.0.0.1 -p "$port" -U postgres tx 2>&1)
			sleep 0.5; kill -INT "$sp"; wait "$sp" 2>/dev/null || true
			tx=$(awk '/actually processed/{print $NF}' <<<"$out"|cut -d/ -f1)
			echo "## strace -c -f $t c=$c, $tx transactions: calls per transaction"
			awk -v tx="$tx" '$1 ~ /^[0-9.]+$/ && NF>=5 {printf "  %-16s %6.2f\n", $NF, $4/tx}' "$w/strace.$t.$c" | sort -k2 -nr | head -12
		done
	done
fi
