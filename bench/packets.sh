#!/bin/bash
# Benchmark: UDP packet rate over a veth pair between two namespaces, with
# and without the tracer, measured as ratios inside one run. Configurations
# are interleaved round by round (the order rotates every round) so that
# machine noise hits all of them:
#   none        no tracer
#   watched     tracer watch --iface A:va  (the packets leave through va:
#               every one is a transmission on a watched interface)
#   watched_rx  tracer watch --iface B:vb  (the packets arrive through vb:
#               every one is a reception on a watched interface)
#   other       tracer watch --iface A:vx  (an idle interface in A)
#   noiface     tracer watch, no --iface   (no packet programs: what the
#               rest of the tracer costs, chiefly its syscall tracepoints,
#               which slow down every syscall of every process, and iperf3
#               makes one per packet on each side)
#   tcpdump     tcpdump -i va -w /dev/null (reference point)
# A round measures `none` before every other configuration and once more
# at its end, and a configuration's ratio is its rate over the mean of the
# two `none` measurements on either side of it (its neighbours); `none`'s
# own ratio is each of its measurements over the mean of its neighbours,
# a gauge of the noise.
# Each measurement is `iperf3 -u -b 0 -l 64` for SECS seconds from A to B;
# the rate is what the receiver got (packets/s). iperf3 makes a syscall per
# packet on each side, and the tracer's syscall tracepoints (see noiface)
# tax every syscall. With SENDER=trafgen the packets come from trafgen
# (netsniff-ng) instead: 64-byte UDP frames from a PACKET_TX_RING, a
# syscall per ring of frames, through the qdisc path (so tc egress and
# net_dev_queue see them), to a port in B with no socket; the rate is B's
# IP InReceives over the measured time. The sender's one CPU does the whole
# path (transmission, veth, reception), like forwarding on a router, where
# no process makes a syscall per packet. With SENDER=mmsg the packets come
# from tests/bin/mmsg.rs (target/release/mmsg, or MMSG=PATH): 18-byte UDP
# datagrams from a connected socket, sendmmsg(2) with 64 per call, to the
# same port in B with no socket; the rate is again B's IP InReceives.
#   bench/packets.sh [ROUNDS] [SECS] [tracer binary]
# Environment:
#   CONFIGS="none watched ..."  the configurations to run (none is required)
#   TRACER_B=PATH  a second tracer binary, to compare two builds in one
#               run: a tracer configuration with the suffix _b (watched_b,
#               other_b, ...) runs it
#   A tracer configuration without the suffix _od runs with
#               --packet-programs always (where the binary has it)
#   A tracer configuration with the suffix _od (watched_od, watched_rx_od,
#               other_od) runs it with --packet-programs on-demand
#               --armed-for 0: the steady state of a router with no
#               routing change for --armed-for (the tcx programs attached
#               100 ms in every second)
#   SENDER=iperf3|trafgen|mmsg  the packet source (default iperf3)
#   PIN=1       pin the iperf3 client or the mmsg sender to CPU 0 and the
#               iperf3 server to CPU 1
#   BPF_STATS=1 also report each packet program's mean run time (ns per
#               run, kernel.bpf_stats_enabled; this slows the programs down,
#               so the rates of such a run are not comparable)
#   PERF=1      also sample all CPUs (perf record -a -g, cpu-clock) during
#               each measurement and report the observer's cost as a share
#               of the CPU the packets themselves take: the samples of the
#               iperf3 processes inside the observer's kernel code (BPF
#               programs, their dispatch from tracepoints and tc, classic
#               tracepoint records, the syscall-tracing slow path; for
#               tcpdump the packet taps), plus the samples of the
#               observer's own process, over the iperf3 samples outside
#               that code. Unlike the rate, this share does not move when
#               other work on the machine takes CPU time from iperf3.
set -euo pipefail
ROUNDS=${1:-5}
SECS=${2:-5}
TRACER=${3:-$(dirname "$0")/../target/release/tracer}
CONFIGS=${CONFIGS:-none watched watched_rx other noiface tcpdump}
A=tb-pkt-a-$$
B=tb-pkt-b-$$
OUT=$(mktemp -d)
SENDER=${SENDER:-iperf3}
MMSG=${MMSG:-$(dirname "$TRACER")/mmsg}
[ "$SENDER" = mmsg ] && [ ! -x "$MMSG" ] && { echo "no $MMSG: cargo build --release -p integration-tests --bin mmsg" >&2; exit 2; }
command -v iperf3 >/dev/null || apt-get install -y iperf3 >/dev/null
[ "$SENDER" = trafgen ] && ! command -v trafgen >/dev/null && apt-get install -y netsniff-ng >/dev/null
command -v tcpdump >/dev/null || apt-get install -y tcpdump >/dev/null
[ "${BPF_STATS:-0}" = 1 ] && ! command -v bpftool >/dev/null && apt-get install -y bpftool >/dev/null
[ "${PERF:-0}" = 1 ] && ! command -v perf >/dev/null && apt-get install -y linux-perf >/dev/null
CLIENT_PIN=() SERVER_PIN=()
if [ "${PIN:-0}" = 1 ]; then
	CLIENT_PIN=(taskset -c 0)
	SERVER_PIN=(taskset -c 1)
fi
STATS_BEFORE=$(cat /proc/sys/kernel/bpf_stats_enabled)
# The trafgen and mmsg senders run in a cpuacct cgroup of their own, so
# that a measurement also yields packets per CPU-second of the sender
# (cpuacct.usage, which here includes the softirq work done in the
# sender's context, plus the ksoftirqd threads' run time): unlike the
# rate, it does not move when other work takes the CPU from the sender.
CG=/sys/fs/cgroup/cpuacct/tb-pkt-$$
[ -d /sys/fs/cgroup/cpuacct ] && mkdir -p "$CG" 2>/dev/null || CG=
# Stop an observer and wait until it is gone (it is not this shell's
# child: it was started inside $(...)), so that its programs are detached
# before the next measurement.
stop() {
	kill -INT "$1" 2>/dev/null || return 0
	for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
	kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
	[ -n "${pid:-}" ] && stop "$pid"
	[ -s "$OUT/observer.pid" ] && stop "$(cat "$OUT/observer.pid")"
	[ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	echo "$STATS_BEFORE" >/proc/sys/kernel/bpf_stats_enabled
	rm -rf "$OUT"
	[ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
}
trap cleanup EXIT
[ "${BPF_STATS:-0}" = 1 ] && echo 1 >/proc/sys/kernel/bpf_stats_enabled
echo "start: $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg); rounds $ROUNDS x ${SECS}s; sender $SENDER; pin ${PIN:-0}; tracer $TRACER (commit $(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo unknown))"
ip netns add "$A"
ip netns add "$B"
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" link add vx type veth peer name vy
ip -n "$A" addr add 10.77.0.1/24 dev va
ip -n "$B" addr add 10.77.0.2/24 dev vb
for l in va vx vy lo; do ip -n "$A" link set "$l" up; done
for l in vb lo; do ip -n "$B" link set "$l" up; done
if [ "$SENDER" = mmsg ]; then
	:
elif [ "$SENDER" = trafgen ]; then
	FRAME="{ eth(da=$(ip netns exec "$B" cat /sys/class/net/vb/address), sa=$(ip netns exec "$A" cat /sys/class/net/va/address)), ipv4(saddr=10.77.0.1, daddr=10.77.0.2, ttl=64), udp(sport=40000, dport=9), fill(0x41, 22) }"
else
	ip netns exec "$B" "${SERVER_PIN[@]}" iperf3 -s -D -I "$OUT/iperf.pid" >/dev/null
	sleep 0.5
	SPID=$(cat "$OUT/iperf.pid")
fi

# Start the observer of a configuration; prints its pid (or nothing).
start() {
	local ns=$A ifc bin=$TRACER c=$1 extra=()
	if [ "${c%_b}" != "$c" ]; then
		bin=${TRACER_B:?TRACER_B is not set}
		c=${c%_b}
	fi
	if [ "${c%_od}" != "$c" ]; then
		# On demand, in its steady state on a quiet router (--armed-for
		# over): the tcx programs attached only in the sampling windows.
		extra=(--packet-programs on-demand --armed-for 0)
		c=${c%_od}
	elif "$bin" watch --help 2>/dev/null | grep -q -- --packet-programs; then
		# Without the suffix: attached all the time (on demand, the
		# default on tcx, would be armed for the whole run after start-up).
		extra=(--packet-programs always)
	fi
	case $c in
	none) return ;;
	watched) ifc=va ;;
	watched_rx) ns=$B ifc=vb ;;
	other) ifc=vx ;;
	noiface) ifc= ;;
	tcpdump)
		ip netns exec "$A" tcpdump -i va -w /dev/null -q >/dev/null 2>"$OUT/tcpdump.err" &
		local pid=$!
		echo "$pid" >"$OUT/observer.pid"
		for _ in $(seq 100); do grep -q listening "$OUT/tcpdump.err" 2>/dev/null && break; sleep 0.05; done
		echo "$pid"
		return
		;;
	*) echo "unknown configuration $1" >&2; exit 2 ;;
	esac
	[ -n "$ifc" ] || extra=()
	"$bin" watch --json --netns "$ns" ${ifc:+--iface "$ns:$ifc"} "${extra[@]}" >"$OUT/events" 2>"$OUT/err" &
	local pid=$!
	# Known to cleanup before this function returns (a failure here leaves
	# the caller without the pid).
	echo "$pid" >"$OUT/observer.pid"
	for _ in $(seq 1200); do grep -q '"ready"' "$OUT/events" 2>/dev/null && break; sleep 0.05; done
	grep -q '"ready"' "$OUT/events" || {
		echo "$c: no ready line from the tracer within 60 s" >&2
		cat "$OUT/err" >&2
		exit 1
	}
	echo "$pid"
}

# B's IP InReceives counter.
in_receives() {
	ip netns exec "$B" awk '/^Ip:/ { getline; print $4; exit }' /proc/net/snmp
}

# Runs a command in the senders' cgroup (if any).
in_cg() {
	if [ -n "$CG" ]; then
		sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"
	else
		"$@"
	fi
}

# CPU time (ns) of the senders' cgroup and the ksoftirqd threads.
cpu_ns() {
	local cg=0
	[ -n "$CG" ] && cg=$(cat "$CG/cpuacct.usage")
	for p in $(pgrep ksoftirqd); do cat "/proc/$p/schedstat" 2>/dev/null; done |
		awk -v cg="$cg" '{ s += $1 } END { printf "%.0f\n", s + cg }'
}

# "packets/s packets/CPU-s" from (packets, t0, t1, cpu ns before, after,
# error file, sender name).
rates() {
	python3 -c 'import sys; n, t = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); c = (int(sys.argv[5]) - int(sys.argv[4])) / 1e9; n > 0 or sys.exit(open(sys.argv[6]).read() or sys.argv[7] + " sent nothing"); print(n / t, n / c if c > 0 else float("nan"))' "$@"
}

# One measurement with trafgen: packets B received per second.
rate_trafgen() {
	local perf= before after t0 t1
	if [ "${PERF:-0}" = 1 ]; then
		perf record -q -e cpu-clock -F 4999 -a -g -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null &
		perf=$!
	fi
	before=$(in_receives)
	c0=$(cpu_ns)
	t0=$(date +%s.%N)
	in_cg ip netns exec "$A" timeout -s INT "$SECS" trafgen -o va --qdisc-path --cpus 1 \
		--no-sock-mem --notouch-irq --no-cpu-stats "$FRAME" >/dev/null 2>"$OUT/trafgen.err" || true
	t1=$(date +%s.%N)
	c1=$(cpu_ns)
	after=$(in_receives)
	[ -n "$perf" ] && wait "$perf"
	rates "$((after - before))" "$t0" "$t1" "$c0" "$c1" "$OUT/trafgen.err" trafgen
}

# One measurement with the sendmmsg sender: packets B received per second.
rate_mmsg() {
	local perf= before after t0 t1
	if [ "${PERF:-0}" = 1 ]; then
		perf record -q -e cpu-clock -F 4999 -a -g -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null &
		perf=$!
	fi
	before=$(in_receives)
	c0=$(cpu_ns)
	t0=$(date +%s.%N)
	in_cg ip netns exec "$A" "${CLIENT_PIN[@]}" "$MMSG" 10.77.0.2:9 "$SECS" 64 18 >"$OUT/mmsg.out" 2>"$OUT/mmsg.err" || true
	t1=$(date +%s.%N)
	c1=$(cpu_ns)
	after=$(in_receives)
	[ -n "$perf" ] && wait "$perf"
	rates "$((after - before))" "$t0" "$t1" "$c0" "$c1" "$OUT/mmsg.err" mmsg
}

# One measurement. The server takes one test at a time and may still be
# closing the last one: retry a refused start.
rate() {
	[ "$SENDER" = trafgen ] && { rate_trafgen; return; }
	[ "$SENDER" = mmsg ] && { rate_mmsg; return; }
	local try perf=
	for try in 1 2 3 4 5; do
		if [ "${PERF:-0}" = 1 ]; then
			perf record -q -e cpu-clock -F 4999 -a -g -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null &
			perf=$!
		fi
		ip netns exec "$A" "${CLIENT_PIN[@]}" iperf3 -c 10.77.0.2 -u -b 0 -l 64 -t "$SECS" -J >"$OUT/run.json" && break
		[ -n "$perf" ] && wait "$perf"
		[ "$try" = 5 ] && { cat "$OUT/run.json" >&2; exit 1; }
		sleep 1
	done
	[ -n "$perf" ] && wait "$perf"
	python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["end"]["sum"]; print(int(e["packets"]-e["lost_packets"])/e["seconds"], "nan")' "$OUT/run.json"
}

# Mean run time of the loaded packet programs (BPF_STATS=1).
bpf_stats() {
	bpftool prog show -j | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    n = p.get("name", "")
    if n.startswith(("pkt_", "fib", "sys_enter_send")) and p.get("run_cnt", 0) > 0:
        print(f"    {n:12} {p['"'"'run_cnt'"'"']:>9} runs {p['"'"'run_time_ns'"'"'] / p['"'"'run_cnt'"'"']:7.1f} ns/run")'
}

# The observer's cost share from the perf samples of a measurement (PERF=1).
cost() {
	perf script -i "$OUT/perf.data" -F comm,ip,sym 2>/dev/null | python3 -c '
import sys
OBSERVER = ("bpf_trace_run", "perf_trace_", "trace_call_bpf", "bpf_prog_", "sch_handle_ingress", "sch_handle_egress", "tcx_run", "dev_queue_xmit_nit", "tpacket_rcv", "packet_rcv", "syscall_trace_enter", "syscall_exit_work")
base = inside = own = 0
for sample in sys.stdin.read().split("\n\n"):
    lines = sample.strip().split("\n")
    if not lines or not lines[0].strip():
        continue
    comm = lines[0].strip()
    frames = [l.split()[1] if len(l.split()) > 1 else "" for l in lines[1:]]
    if comm in ("tracer", "tcpdump") or comm.startswith("netns-"):
        own += 1
    elif comm in ("iperf3", "trafgen", "mmsg") or comm.startswith("ksoftirqd"):
        if any(f.startswith(OBSERVER) for f in frames):
            inside += 1
        else:
            base += 1
print(f"{100 * (inside + own) / max(base, 1):.2f}")'
}

# Programs of other tracers (other users of this machine) on the packet
# tracepoints slow every configuration down: count them (raw and BTF
# tracepoint links; classic tracepoint users are not visible this way).
foreign() {
	command -v bpftool >/dev/null || { echo "?"; return; }
	bpftool link show 2>/dev/null | grep -cE "tp '(netif_receive_skb|net_dev_queue)'" || true
}

declare -A RATES COSTS NEAR
read -r -a LIST <<<"$CONFIGS"
# The configurations other than none (each round measures none between
# them, see the top).
TRACED=()
for c in "${LIST[@]}"; do [ "$c" != none ] && TRACED+=("$c"); done
[ ${#TRACED[@]} = ${#LIST[@]} ] && { echo "CONFIGS must include none" >&2; exit 2; }
# Rates in the order measured, as "config=rate" (nan: missing).
SEQ=()
for r in $(seq "$ROUNDS"); do
	ORDER=(none)
	for i in "${!TRACED[@]}"; do
		ORDER+=("${TRACED[$(((i + r - 1) % ${#TRACED[@]}))]}" none)
	done
	for c in "${ORDER[@]}"; do
		[ "$c" = none ] && others=$(foreign) || others=0
		if ! pid=$(start "$c"); then
			# A tracer that did not get ready (it waits for the RTNL lock,
			# which other work on the machine may hold): stop it, count the
			# measurement as missing, go on.
			[ -s "$OUT/observer.pid" ] && stop "$(cat "$OUT/observer.pid")"
			: >"$OUT/observer.pid"
			RATES[$c]="${RATES[$c]:-} nan"
			COSTS[$c]="${COSTS[$c]:-} nan"
			SEQ+=("$c=nan:nan")
			printf 'round %d %-10s  skipped: the observer did not start\n' "$r" "$c"
			continue
		fi
		read -r v pc < <(rate)
		[ "${BPF_STATS:-0}" = 1 ] && [ -n "$pid" ] && [ "$c" != tcpdump ] && stats=$(bpf_stats) || stats=
		[ -n "$pid" ] && stop "$pid"
		pid=
		: >"$OUT/observer.pid"
		RATES[$c]="${RATES[$c]:-} $v"
		SEQ+=("$c=$v:$pc")
		printf 'round %d %-10s %12.0f packets/s %12.0f packets/CPU-s' "$r" "$c" "$v" "$pc"
		if [ "${PERF:-0}" = 1 ]; then
			k=$(cost)
			COSTS[$c]="${COSTS[$c]:-} $k"
			printf '  cost %5s%%' "$k"
		fi
		[ "$others" != 0 ] && printf '  (other programs on the packet tracepoints: %s)' "$others"
		printf '\n'
		[ -n "$stats" ] && echo "$stats"
	done
done
echo "end: $(date -u +%FT%TZ) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "--- medians, and ratios to the neighbouring 'none' measurements (median, min-max)"
python3 - "${SEQ[@]}" <<'PY'
import sys, statistics as st
def neighbours(seq):
    runs, near = {}, {}
    for i, (n, v) in enumerate(seq):
        runs.setdefault(n, []).append(v)
        # The nearest none on each side (none's own: the next one out).
        prev = next((x for m, x in reversed(seq[:i]) if m == "none" and x == x), None)
        nxt = next((x for m, x in seq[i + 1:] if m == "none" and x == x), None)
        refs = [x for x in (prev, nxt) if x is not None]
        if v == v and refs:
            near.setdefault(n, []).append(v / (sum(refs) / len(refs)))
    return runs, near
split = [(a.split("=")[0], a.split("=")[1].split(":")) for a in sys.argv[1:]]
runs, near = neighbours([(n, float(v[0])) for n, v in split])
cpu_runs, cpu_near = neighbours([(n, float(v[1])) for n, v in split])
def ratios(a, b):
    return [x / y for x, y in zip(a, b) if x == x and y == y]
for n, v in runs.items():
    r = near.get(n, [float("nan")])
    print(f"{n:10} median {st.median([x for x in v if x == x]):10.0f} packets/s  ratio {st.median(r):.3f} ({min(r):.3f}-{max(r):.3f}, {len(r)} measurements)  each: {' '.join(f'{x:.3f}' for x in r)}")
if any(cpu_near.values()):
    print("--- packets per CPU-second of the sender (and ksoftirqd): ratios to the neighbouring 'none' measurements")
    for n, v in cpu_runs.items():
        r = cpu_near.get(n) or [float("nan")]
        print(f"{n:10} median {st.median([x for x in v if x == x] or [float('nan')]):10.0f} packets/CPU-s  ratio {st.median(r):.3f} ({min(r):.3f}-{max(r):.3f})  each: {' '.join(f'{x:.3f}' for x in r)}")
if "noiface" in runs:
    print("--- the packet path alone: ratios to 'noiface' (the tracer without --iface)")
    for n in runs:
        if n.startswith(("watched", "other")):
            ref = "noiface_b" if n.endswith("_b") and "noiface_b" in runs else "noiface"
            r = ratios(runs[n], runs[ref])
            print(f"{n:10} ratio {st.median(r):.3f} ({min(r):.2f}-{max(r):.2f}, {len(r)} rounds)  per round: {' '.join(f'{x:.3f}' for x in r)}")
PY
if [ "${PERF:-0}" = 1 ]; then
	echo "--- observer cost, % of the packets' own CPU (median, min-max), and the rate ratio it implies, 1/(1+cost)"
	args=()
	for c in "${LIST[@]}"; do args+=("$c=${COSTS[$c]}"); done
	python3 - "${args[@]}" <<'PY'
import sys, statistics as st
costs = {a.split("=")[0]: [x for x in map(float, a.split("=")[1].split()) if x == x] for a in sys.argv[1:]}
for n, v in costs.items():
    m = st.median(v)
    print(f"{n:10} cost {m:6.2f}% ({min(v):.2f}-{max(v):.2f})  implied ratio {1 / (1 + m / 100):.3f}  per round: {' '.join(f'{x:.2f}' for x in v)}")
if "noiface" in costs:
    print("--- the packet path alone: cost minus the cost of 'noiface' (medians)")
    for n in costs:
        if n.startswith(("watched", "other")):
            ref = "noiface_b" if n.endswith("_b") and "noiface_b" in costs else "noiface"
            m = st.median(costs[n]) - st.median(costs[ref])
            print(f"{n:10} cost {m:6.2f}%  implied ratio {1 / (1 + m / 100):.3f}")
PY
fi
