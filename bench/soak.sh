#!/bin/bash
# Soak benchmark (issue 16 part 3): `tracer record`, `tracer guard` and
# `tracer watch --iface` run for DURATION while
#   - 4 namespaces churn rules and routes with `ip -batch` (adds, replaces,
#     deletes; IPv4 and IPv6), paced to SOAK_RATE changes/s in all (20,000);
#   - a link flaps in the first of them (down, up, every 2 s);
#   - a namespace is created, given a link, an address and a route, and
#     deleted, every 4 s;
#   - the incident lab's looping flow (tests/lab/lab.sh, tailnet_peer) is
#     switched on and off once a period: on 5 s into it, for about 3 s;
#   - the journal's disk, a 64 MiB tmpfs, is filled by a file 20 s into each
#     period and emptied 8 s (even periods) or 2 s (odd ones) later: the
#     recorder holds what it cannot write (32 MiB at most), then writes it
#     or reports what it dropped.
# Every period (SOAK_SAMPLE_SECS, 60 s) it samples each tracer's RSS,
# descriptors, BPF objects held (maps, programs, links), threads and CPU
# time, with the kernel's change count (the changes the churn applied:
# commands minus ip's "Command failed" lines) and the journal's lines, into
# OUT/samples.tsv. At the end it prints the table and a verdict, one
# PASS/FAIL line per check, and exits 0 only if every check passes:
#   - RSS grows by at most 5% after the warm-up (the first sample at or
#     after SOAK_WARMUP_SECS: 300 s, or one period for runs under 10 min,
#     which also allow 1 MiB: a small RSS has not settled after a minute);
#   - descriptors (besides 2 sockets per watched namespace) no more at the
#     end than after the warm-up, and BPF objects the same;
#   - record's events and watch's report every change the churn made; the
#     journal holds them all, or the lines missing from it are exactly the
#     drops the journal reported (journal_resumed);
#   - every loop period is reported as one loop, none for the healthy pings;
#     the guard reports each as a violation, then restored;
#   - every short-lived namespace is reported new and gone by record, and
#     no metrics series is left for one.
# The output directory (SOAK_OUT, else a new /tmp/tracer-soak.*) is kept.
#
#   bench/soak.sh DURATION [tracer binary]
#
# DURATION: seconds (120) or with a unit (90s, 10m, 1h). Needs root,
# iproute2, nft, bpftool, python3, curl, and tailnet_peer and soak_tally
# (built with the integration tests: TAILNET_PEER and SOAK_TALLY, else next
# to the tracer binary).
# SOAK_SAMPLE_SECS (at least 40) is also the period of the loop and of the
# disk fills. SOAK_KEEP=1 keeps every line each tracer wrote
# (OUT/NAME.all.jsonl, about 10 MB/s at 20,000 changes/s); otherwise the
# tallies keep the lines about the lab and the short-lived namespaces
# (NAME.lab.jsonl), the notable ones (NAME.notable.jsonl) and the first
# 200 churned changes that are not ok or out of turn (NAME.odd.jsonl).
# tests/bin/soak_tally.rs counts what each tracer writes; bench/soak_churn.py
# runs the churn, bench/soak_sample.py takes the samples and
# bench/soak_verdict.py gives the verdict.
set -euo pipefail
# The helpers import bench/soak_files.py; no __pycache__ left in the tree.
export PYTHONDONTWRITEBYTECODE=1

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case $1 in
*h) DURATION=$((${1%h} * 3600)) ;;
*m) DURATION=$((${1%m} * 60)) ;;
*s) DURATION=${1%s} ;;
*) DURATION=$1 ;;
esac
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -gt 0 ] || usage
HERE=$(cd "$(dirname "$0")" && pwd)
TRACER=$(readlink -f "${2:-$HERE/../target/release/tracer}")
PEER=${TAILNET_PEER:-$(dirname "$TRACER")/tailnet_peer}
TALLY=${SOAK_TALLY:-$(dirname "$TRACER")/soak_tally}
LAB=$HERE/../tests/lab/lab.sh
RATE=${SOAK_RATE:-20000}
PERIOD=${SOAK_SAMPLE_SECS:-60}
if [ "$DURATION" -ge 600 ]; then WARMUP=${SOAK_WARMUP_SECS:-300}; else WARMUP=${SOAK_WARMUP_SECS:-$PERIOD}; fi
[[ $PERIOD =~ ^[0-9]+$ ]] && [ "$PERIOD" -ge 40 ] || { echo "soak.sh: SOAK_SAMPLE_SECS must be at least 40" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root (namespaces, eBPF, tmpfs)" >&2; exit 1; }
[ -x "$TRACER" ] || { echo "soak.sh: no tracer binary at $TRACER (cargo build --release -p tracer)" >&2; exit 1; }
for b in "$PEER" "$TALLY"; do
	[ -x "$b" ] || { echo "soak.sh: no $b (cargo build --release -p integration-tests --bin tailnet_peer --bin soak_tally, or set TAILNET_PEER and SOAK_TALLY)" >&2; exit 1; }
done
for c in ip nft bpftool python3 curl; do command -v $c >/dev/null || { echo "soak.sh: $c is missing" >&2; exit 1; }; done

P=soak-$$
R=$P-r
L=$P-l
CHURN=("$P-c1" "$P-c2" "$P-c3" "$P-c4")
OUT=${SOAK_OUT:-$(mktemp -d /tmp/tracer-soak.XXXXXX)}
mkdir -p "$OUT"
[ -z "$(ls -A "$OUT")" ] || { echo "soak.sh: $OUT is not empty" >&2; exit 1; }
DISK=$OUT/disk
J=$DISK/journal
declare -A TPID=() # tracer name -> pid, while running
BG=()              # workers and tallies
MOUNTED=0
log() { echo "[soak] $*"; }

cleanup() {
	set +e
	touch "$OUT/stop" "$OUT/journal.stop"
	rm -f "$OUT/pause" "$DISK/filler"
	for name in "${!TPID[@]}"; do kill -INT "${TPID[$name]}" 2>/dev/null; done
	for name in "${!TPID[@]}"; do
		for _ in $(seq 100); do kill -0 "${TPID[$name]}" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "${TPID[$name]}" 2>/dev/null
	done
	for _ in $(seq 50); do
		alive=0
		for pid in "${BG[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	[ "$MOUNTED" = 1 ] && umount "$DISK"
	bash "$LAB" down "$R" "$L" 2>/dev/null
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
	rm -f "$OUT"/*.fifo "$OUT"/*.batch
	echo "[soak] output: $OUT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free loopback port for --metrics.
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Sleep until epoch second $1; false if the stop file appears first.
until_t() {
	while [ "$(date +%s)" -lt "$1" ]; do
		[ -e "$OUT/stop" ] && return 1
		sleep 0.5
	done
	[ ! -e "$OUT/stop" ]
}

# ---------------------------------------------------------------- set-up
log "output: $OUT; tracer $TRACER; $DURATION s, a sample every $PERIOD s, warm-up $WARMUP s, churn $RATE changes/s"
mkdir -p "$DISK"
mount -t tmpfs -o size=64m "tracer-soak-$$" "$DISK"
MOUNTED=1
mkdir "$J"
bash "$LAB" up "$R" "$L"
for ns in "${CHURN[@]}"; do
	ip netns add "$ns"
	ip netns exec "$ns" sysctl -q -w net.ipv6.conf.default.accept_dad=0 >/dev/null
	ip -n "$ns" link set lo up
	ip -n "$ns" link add d0 type veth peer name d1
	ip -n "$ns" link set d0 up
	ip -n "$ns" link set d1 up
	# What the guard expects in every namespace it checks.
	ip -n "$ns" route add throw 192.168.1.0/24 table 52
done
FLAP_NS=${CHURN[0]}
ip -n "$FLAP_NS" link add f0 type veth peer name f1
ip -n "$FLAP_NS" addr add 10.250.0.1/24 dev f0
ip -n "$FLAP_NS" addr add fd00:250::1/64 dev f0
ip -n "$FLAP_NS" link set f1 up
ip -n "$FLAP_NS" link set f0 up
ip -n "$FLAP_NS" route add 10.251.0.0/16 via 10.250.0.2 table 200

# ---------------------------------------------------------------- tracers
mkfifo "$OUT/watch.fifo" "$OUT/record.fifo" "$OUT/guard.fifo"
# The soak's own processes, whose CPU time the samples record.
helper() { BG+=("$2"); echo "$1 $2" >>"$OUT/helpers.pids"; }
"$TALLY" watch "$OUT" "$P" <"$OUT/watch.fifo" &
helper tally_watch $!
"$TALLY" record "$OUT" "$P" <"$OUT/record.fifo" &
helper tally_record $!
"$TALLY" guard "$OUT" "$P" <"$OUT/guard.fifo" &
helper tally_guard $!
"$TALLY" journal "$OUT" "$P" --journal "$J" &
helper tally_journal $!

declare -A PORT=([record]=$(port) [guard]=$(port) [watch]=$(port))
# record: every namespace, its journal on the small disk, every event also
# to the tally (--output) so that what the journal lacks can be counted.
# (64 MiB and 48 MiB: the journal's retention must not remove a file
# before the journal's tally has opened it, even in the burst of a 32 MiB
# backlog written after the disk empties.)
"$TRACER" record --json --journal "$J" --max-file-size 1MiB --max-total-size 48MiB \
	--output "$OUT/record.fifo" --metrics "127.0.0.1:${PORT[record]}" \
	>"$OUT/record.out" 2>"$OUT/record.err" &
TPID[record]=$!
guard_ns=()
for ns in "$R" "${CHURN[@]}"; do guard_ns+=(--netns "$ns"); done
# guard: the lab router and the churned namespaces (each holds the route
# it expects); every event also to the tally (--output), so that it can be
# seen to keep up.
"$TRACER" guard --json "${guard_ns[@]}" --expect 'throw 192.168.1.0/24 table 52' --grace 2s \
	--output "$OUT/guard.fifo" --metrics "127.0.0.1:${PORT[guard]}" \
	>"$OUT/guard.out" 2>"$OUT/guard.err" &
TPID[guard]=$!
"$TRACER" watch --json --iface "$R:tailscale0" --metrics "127.0.0.1:${PORT[watch]}" \
	>"$OUT/watch.fifo" 2>"$OUT/watch.err" &
TPID[watch]=$!
for name in record guard watch; do
	for i in $(seq 600); do
		if [ -n "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('ready') or '')" "$OUT/$name.state.json" 2>/dev/null)" ]; then
			break
		fi
		if ! kill -0 "${TPID[$name]}" 2>/dev/null || [ "$i" = 600 ]; then
			echo "soak.sh: $name never became ready:" >&2
			cat "$OUT/$name.err" >&2
			exit 1
		fi
		sleep 0.1
	done
done
T0=$(date +%s)
cat >"$OUT/meta.json" <<EOF
{"t0": $T0, "duration": $DURATION, "period": $PERIOD, "warmup": $WARMUP, "prefix": "$P", "router": "$R",
 "pids": {"record": ${TPID[record]}, "guard": ${TPID[guard]}, "watch": ${TPID[watch]}},
 "ports": {"record": ${PORT[record]}, "guard": ${PORT[guard]}, "watch": ${PORT[watch]}}}
EOF
log "ready: record ${TPID[record]}, guard ${TPID[guard]}, watch ${TPID[watch]}"

# ---------------------------------------------------------------- workers
# Each runs until $OUT/stop exists, then finishes what it is doing; its
# exit status goes to workers.exit.
flapper() {
	local n=0
	while [ ! -e "$OUT/stop" ]; do
		ip -n "$FLAP_NS" link set f0 down || return 1
		sleep 1
		ip -n "$FLAP_NS" link set f0 up || return 1
		# The kernel removed the gateway route with the link.
		ip -n "$FLAP_NS" route add 10.251.0.0/16 via 10.250.0.2 table 200 || return 1
		n=$((n + 1))
		echo $n >"$OUT/flaps.count"
		sleep 1
	done
}

cycler() {
	local i=0 ns
	while [ ! -e "$OUT/stop" ]; do
		if [ -e "$OUT/pause" ]; then sleep 0.2; continue; fi
		i=$((i + 1))
		ns=$P-e$i
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up &&
			ip -n "$ns" link add v0 type veth peer name v1 &&
			ip -n "$ns" addr add 10.9.0.1/24 dev v0 &&
			ip -n "$ns" link set v0 up &&
			ip -n "$ns" link set v1 up &&
			ip -n "$ns" route add 10.99.0.0/16 via 10.9.0.2 || return 1
		echo $i >"$OUT/ephemeral.count"
		sleep 3
		ip netns del "$ns" || return 1
		sleep 1
	done
}

# The summary number KEY of what tailnet_peer printed ($2).
peer_count() { sed -n "s/.*peer: summary .*\b$1=\([0-9]*\).*/\1/p" <<<"$2"; }

looper() {
	local n=0 out looped replies
	while until_t $((T0 + n * PERIOD + 5)); do
		# networkd's flush and tailscaled's partial restore: the throw route
		# is gone, the peer's requests to the LAN loop back out of tailscale0.
		bash "$LAB" flush "$R" && bash "$LAB" restore "$R" || return 1
		out=$(ip netns exec "$R" "$PEER" --src 100.119.140.15 --dst 192.168.1.90 \
			--id $((100 + n)) --count 10 --interval-ms 300 --timeout-ms 2000) || return 1
		looped=$(peer_count looped "$out")
		ip -n "$R" route add throw 192.168.1.0/24 table 52 || return 1
		date +%s >"$OUT/lastloop"
		sleep 1
		out=$(ip netns exec "$R" "$PEER" --src 100.119.140.15 --dst 192.168.1.90 \
			--id $((30000 + n)) --count 3 --interval-ms 100 --timeout-ms 2000) || return 1
		replies=$(peer_count replies "$out")
		echo "$n $((100 + n)) ${looped:-0} $((30000 + n)) ${replies:-0}" >>"$OUT/loops.tsv"
		n=$((n + 1))
	done
}

filler() {
	local n=0 hold
	while until_t $((T0 + n * PERIOD + 20)); do
		hold=$((n % 2 == 0 ? 8 : 2))
		dd if=/dev/zero of="$DISK/filler" bs=64k 2>/dev/null || true
		echo "$n $(date +%s) $hold $(df -k --output=avail "$DISK" | tail -1)" >>"$OUT/fills.tsv"
		sleep $hold
		rm -f "$DISK/filler"
		n=$((n + 1))
	done
}

worker() { (
	set +e
	"$1"
	echo "$1 $?" >>"$OUT/workers.exit"
) & BG+=($!); }

python3 "$HERE/soak_sample.py" "$OUT" start
python3 "$HERE/soak_churn.py" "$OUT" "$RATE" "${CHURN[@]}" &
CHURN_PID=$!
helper churn $CHURN_PID
worker flapper
worker cycler
worker looper
worker filler

# ---------------------------------------------------------------- samples
# Each sample waits for a quiet moment of the namespace cycler (none of its
# namespaces left, and 2 s for the tracers to let go of them), so that the
# descriptors counted are comparable.
quiet_sample() {
	touch "$OUT/pause"
	for _ in $(seq 100); do
		ip netns list 2>/dev/null | grep -q "^$P-e" || break
		sleep 0.1
	done
	sleep 2
	python3 "$HERE/soak_sample.py" "$OUT" "$1"
	rm -f "$OUT/pause"
}
for ((n = 1; n * PERIOD <= DURATION; n++)); do
	until_t $((T0 + n * PERIOD - 4)) || break
	quiet_sample periodic
done
touch "$OUT/stop"
log "stopping the workload"
wait "$CHURN_PID"
for pid in "${BG[@]:4}"; do wait "$pid" || true; done

# ---------------------------------------------------------------- the end
# Let the tracers catch up with the churn (until all three have every
# change, or nothing moved for 15 s, or SETTLE_MAX s passed: a tracer far
# behind is then stopped behind, and the verdict says by how much), let
# the loop machinery go quiet (FIB lookup tracing detaches 30 s after the
# last looped packet), and let the journal write again.
SETTLE_MAX=$((DURATION / 2 > 120 ? DURATION / 2 : 120))
caught_up() {
	python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
k = json.load(open(f"{out}/churn.json"))["applied"]
got = [json.load(open(f"{out}/{n}.state.json"))["churn_changes"] for n in ("record", "guard", "watch")]
print(" ".join(map(str, got)), "of", k, "caught-up" if all(g >= k for g in got) else "behind")
PY
}
last="" still=0 settle_end=$(($(date +%s) + SETTLE_MAX))
while [ "$(date +%s)" -lt "$settle_end" ]; do
	now=$(caught_up)
	[[ $now == *caught-up ]] && break
	if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0; fi
	[ $still -ge 15 ] && break
	last=$now
	sleep 1
done
log "settled: $(caught_up) (churned changes reported by record, guard and watch) $((SETTLE_MAX - settle_end + $(date +%s))) s after the churn stopped"
if [ -e "$OUT/lastloop" ]; then until_t_quiet=$(($(cat "$OUT/lastloop") + 35)); else until_t_quiet=0; fi
while [ "$(date +%s)" -lt "$until_t_quiet" ]; do sleep 1; done
for _ in $(seq 60); do
	curl -s -m 5 "127.0.0.1:${PORT[record]}/metrics" | grep -q '^tracer_journal_failing 0' && break
	sleep 1
done
sleep 2
echo "{\"since_last_loop\": $(($(date +%s) - $(cat "$OUT/lastloop" 2>/dev/null || echo 0)))}" >"$OUT/end.json"
python3 "$HERE/soak_sample.py" "$OUT" end
for name in record guard watch; do
	curl -s -m 30 "127.0.0.1:${PORT[$name]}/metrics" >"$OUT/$name.metrics" || echo "# no answer within 30 s" >>"$OUT/$name.metrics"
done
# SIGINT, as systemd stops a service; one that has not exited 60 s later is
# killed (systemd's own timeout is 90 s) and the verdict says so.
for name in record guard watch; do kill -INT "${TPID[$name]}"; done
stop_end=$(($(date +%s) + 60))
exits="{"
for name in record guard watch; do
	while kill -0 "${TPID[$name]}" 2>/dev/null && [ "$(date +%s)" -lt "$stop_end" ]; do sleep 0.2; done
	rc=0
	if kill -0 "${TPID[$name]}" 2>/dev/null; then
		kill -KILL "${TPID[$name]}"
		wait "${TPID[$name]}" || true
		rc='"killed: still running 60 s after SIGINT"'
	else
		wait "${TPID[$name]}" || rc=$?
	fi
	unset "TPID[$name]"
	exits="$exits\"$name\": $rc, "
done
echo "${exits%, }}" >"$OUT/exits.json"
touch "$OUT/journal.stop"
for pid in "${BG[@]:0:4}"; do wait "$pid" || true; done
log "workers: $(tr '\n' ' ' <"$OUT/workers.exit")"
rc=0
python3 "$HERE/soak_verdict.py" "$OUT" | tee "$OUT/verdict.txt" || rc=$?
exit $rc
