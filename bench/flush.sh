#!/bin/bash
# Benchmark: `ip route flush` of N routes in a namespace while `tracer watch`
# records it. Reports start-up to ready, events reported, lost counts,
# userspace throughput and the tracer's peak RSS.
#   bench/flush.sh [N] [tracer binary]
set -euo pipefail
N=${1:-1000000}
TRACER=${2:-$(dirname "$0")/../target/release/tracer}
NS=tracer-bench-$$
OUT=$(mktemp -d)
cleanup() { kill -INT "${TPID:-0}" 2>/dev/null || true; ip netns del "$NS" 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link add v0 type veth peer name v1
ip -n "$NS" link set v0 up
# N routes in table 100, added in one batch (not traced: the tracer starts later).
python3 - "$N" > "$OUT/batch" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"route add 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32 dev v0 table 100")
PY
ip -n "$NS" -batch "$OUT/batch"
echo "routes in table 100: $(ip -n "$NS" route show table 100 | wc -l)"

start=$(date +%s.%N)
/usr/bin/time -v -o "$OUT/time" "$TRACER" watch --json --netns "$NS" --table 100 > "$OUT/events" 2> "$OUT/err" &
TPID=$!
while [ ! -s "$OUT/events" ]; do sleep 0.01; done
ready=$(date +%s.%N)
echo "start-up to ready: $(echo "$ready - $start" | bc) s"
TPID=$(pgrep -P $TPID tracer || echo $TPID)

# The tracer's CPU time (user + system, all threads), in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$TPID/stat"; }
HZ=$(getconf CLK_TCK)
c0=$(cpu)
t0=$(date +%s.%N)
ip -n "$NS" route flush table 100
t1=$(date +%s.%N)
echo "ip route flush of $N routes: $(echo "$t1 - $t0" | bc) s"
# Wait until the output has stopped growing for 2 s (or 120 s pass); the
# last growth is when the last event was written. Only the file size is
# polled, so the wait costs no CPU that the tracer could use.
size=-1; t2=$t1; c2=$c0; still=0
for _ in $(seq 2400); do
    s=$(stat -c %s "$OUT/events")
    if [ "$s" != "$size" ]; then size=$s; t2=$(date +%s.%N); c2=$(cpu); still=0
    else still=$((still + 1)); [ $still -ge 40 ] && break; fi
    sleep 0.05
done
kill -INT "$TPID"; wait || true
n=$(grep -c '"kind":"route_del"' "$OUT/events" || true)
ok=$(grep '"kind":"route_del"' "$OUT/events" | grep -c '"result":"ok"' || true)
lost=$( (grep '"kind":"lost"' "$OUT/events" || true) | python3 -c 'import sys,json; print(sum(json.loads(l)["count"] for l in sys.stdin))')
who=$(grep '"kind":"route_del"' "$OUT/events" | grep -c '"process":{"pid"' || true)
echo "route_del events: $n (result ok: $ok, with the process: $who), lost records reported: $lost"
echo "flush start to last event: $(echo "$t2 - $t0" | bc) s => $(echo "$n / ($t2 - $t0)" | bc) events/s"
cpus=$(echo "scale=2; ($c2 - $c0) / $HZ" | bc)
if [ "$c2" -gt "$c0" ]; then
    echo "tracer CPU time (all threads) from flush start to last event: $cpus s => $(echo "$n / $cpus" | bc) events per CPU-second"
else
    echo "tracer CPU time (all threads) from flush start to last event: under one clock tick"
fi
grep -E "Maximum resident|Percent of CPU" "$OUT/time" | sed 's/^\s*/tracer: /'
grep -v '^$' "$OUT/err" | head -5 || true
