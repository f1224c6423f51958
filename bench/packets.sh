#!/bin/bash
# Benchmark: UDP packet rate over a veth pair between two namespaces, with
# and without the tracer, measured as ratios inside one run. Configurations
# are interleaved round by round so that machine noise hits all of them:
#   none      no tracer
#   watched   tracer watch --iface A:va  (the interface the packets cross)
#   other     tracer watch --iface A:vx  (an idle interface in the same namespace)
#   tcpdump   tcpdump -i va -w /dev/null (reference point)
# Each measurement is `iperf3 -u -b 0 -l 64` for SECS seconds from A to B;
# the rate is what the receiver got (packets/s).
#   bench/packets.sh [ROUNDS] [SECS] [tracer binary]
set -euo pipefail
ROUNDS=${1:-5}
SECS=${2:-5}
TRACER=${3:-$(dirname "$0")/../target/release/tracer}
A=tb-pkt-a-$$
B=tb-pkt-b-$$
OUT=$(mktemp -d)
command -v iperf3 >/dev/null || apt-get install -y iperf3 >/dev/null
command -v tcpdump >/dev/null || apt-get install -y tcpdump >/dev/null
cleanup() {
	[ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$OUT"
}
trap cleanup EXIT
ip netns add "$A"
ip netns add "$B"
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" link add vx type veth peer name vy
ip -n "$A" addr add 10.77.0.1/24 dev va
ip -n "$B" addr add 10.77.0.2/24 dev vb
for l in va vx vy lo; do ip -n "$A" link set "$l" up; done
for l in vb lo; do ip -n "$B" link set "$l" up; done
ip netns exec "$B" iperf3 -s -D -I "$OUT/iperf.pid" >/dev/null
sleep 0.5
SPID=$(cat "$OUT/iperf.pid")

# Start the observer of a configuration; prints its pid (or nothing).
start() {
	case $1 in
	none) ;;
	watched | other)
		local ifc=va
		[ "$1" = other ] && ifc=vx
		"$TRACER" watch --json --netns "$A" --iface "$A:$ifc" >"$OUT/events" 2>"$OUT/err" &
		local pid=$!
		for _ in $(seq 600); do grep -q '"ready"' "$OUT/events" 2>/dev/null && break; sleep 0.05; done
		grep -q '"ready"' "$OUT/events" || { cat "$OUT/err" >&2; exit 1; }
		echo "$pid"
		;;
	tcpdump)
		ip netns exec "$A" tcpdump -i va -w /dev/null -q >/dev/null 2>"$OUT/tcpdump.err" &
		local pid=$!
		for _ in $(seq 100); do grep -q listening "$OUT/tcpdump.err" 2>/dev/null && break; sleep 0.05; done
		echo "$pid"
		;;
	esac
}

rate() {
	ip netns exec "$A" iperf3 -c 10.77.0.2 -u -b 0 -l 64 -t "$SECS" -J >"$OUT/run.json"
	python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["end"]["sum"]; print(int(e["packets"]-e["lost_packets"])/e["seconds"])' "$OUT/run.json"
}

declare -A RATES
CONFIGS="none watched other tcpdump"
for r in $(seq "$ROUNDS"); do
	for c in $CONFIGS; do
		pid=$(start "$c")
		v=$(rate)
		[ -n "$pid" ] && { kill -INT "$pid"; wait "$pid" 2>/dev/null || true; }
		RATES[$c]="${RATES[$c]:-} $v"
		printf 'round %d %-8s %12.0f packets/s\n' "$r" "$c" "$v"
	done
done
echo "--- medians, and ratios to 'none' (median of per-round ratios)"
python3 - "${RATES[none]}" "${RATES[watched]}" "${RATES[other]}" "${RATES[tcpdump]}" <<'PY'
import sys, statistics as st
names = ["none", "watched", "other", "tcpdump"]
runs = [list(map(float, a.split())) for a in sys.argv[1:]]
for n, v in zip(names, runs):
    ratios = [x / b for x, b in zip(v, runs[0])]
    print(f"{n:8} median {st.median(v):12.0f} packets/s  ratio {st.median(ratios):.3f}  (per round: {' '.join(f'{r:.3f}' for r in ratios)})")
PY
