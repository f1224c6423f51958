#!/bin/bash
# Benchmark: what watching every namespace costs. Creates COUNT namespaces
# named with `ip netns add` and COUNT held only by a process (`unshare -n
# sleep`), then, for each tracer configuration in turn (RUNS times,
# alternating), measures the start-up to the `ready` line, the tracer's
# CPU while idle for IDLE seconds, its threads and its RSS.
#   bench/netns.sh [COUNT] [RUNS] [IDLE]
# Configurations (env): TRACER (default target/release/tracer) without
# filters, TRACER with `--netns pid:$$` (its own namespace only), and BASE
# (another build, e.g. before this change) without filters, if set.
# With COUNT=0 no namespace is made (the baseline without them).
set -euo pipefail
COUNT=${1:-100}
RUNS=${2:-3}
IDLE=${3:-20}
TRACER=${TRACER:-$(dirname "$0")/../target/release/tracer}
BASE=${BASE:-}
P=tb-$$
OUT=$(mktemp -d)
HOLDERS=()
cleanup() {
    if [ -n "${TPID:-}" ]; then kill -INT "$TPID" 2>/dev/null || true; fi
    for h in "${HOLDERS[@]}"; do kill "$h" 2>/dev/null || true; done
    for i in $(seq "$COUNT"); do ip netns del "$P-$i" 2>/dev/null || true; done
    rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for i in $(seq "$COUNT"); do
    ip netns add "$P-$i"
    unshare -n sleep 3600 > /dev/null 2>&1 &
    HOLDERS+=($!)
done
sleep 1
echo "processes: $(ls -d /proc/[0-9]* | wc -l), nsfs mounts: $(grep -c ' nsfs ' /proc/self/mountinfo)"
HZ=$(getconf CLK_TCK)

measure() { # label binary args...
    local label=$1 bin=$2; shift 2
    local start ready c0 c1
    rm -f "$OUT/events"
    start=$(date +%s.%N)
    "$bin" watch --json "$@" > "$OUT/events" 2> "$OUT/err" &
    TPID=$!
    while [ ! -s "$OUT/events" ]; do
        kill -0 "$TPID" 2>/dev/null || { cat "$OUT/err"; exit 1; }
        sleep 0.005
    done
    ready=$(date +%s.%N)
    sleep 2
    c0=$(awk '{print $14 + $15}' "/proc/$TPID/stat")
    sleep "$IDLE"
    c1=$(awk '{print $14 + $15}' "/proc/$TPID/stat")
    local threads rss watched
    threads=$(awk '/^Threads/ {print $2}' "/proc/$TPID/status")
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$TPID/status")
    watched=$(head -1 "$OUT/events" | python3 -c 'import sys,json; print(len(json.loads(sys.stdin.readline())["namespaces"]))')
    kill -INT "$TPID"; wait "$TPID" || true
    TPID=
    printf '%-22s watched %4d  ready %.2f s  idle CPU %5.2f%% of a core (%d ticks in %d s)  threads %3d  RSS %6d KiB\n' \
        "$label" "$watched" "$(echo "$ready - $start" | bc)" \
        "$(echo "scale=4; 100 * ($c1 - $c0) / $HZ / $IDLE" | bc)" "$((c1 - c0))" "$IDLE" "$threads" "$rss"
}

for run in $(seq "$RUNS"); do
    measure "all (run $run)" "$TRACER"
    measure "own only (run $run)" "$TRACER" --netns "pid:$$"
    if [ -n "$BASE" ]; then measure "base (run $run)" "$BASE"; fi
done
