#!/bin/bash
# How long after the end of the grace period `tracer guard --repair` has the
# removed route back, measured from outside the tracer: `ip monitor` in the
# namespace timestamps the removal and the re-addition of
# `throw 192.168.1.0/24 table 52`; the latency is (re-addition - removal -
# grace). ROUNDS removals, one every 2.5 s.
#
#   bench/repair.sh [ROUNDS] [GRACE_MS]     (as root; release build)
set -euo pipefail
ROUNDS=${1:-20}
GRACE_MS=${2:-1000}
TRACER=${TRACER:-${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/tracer}
NS=bench-repair-$$
MON=$(mktemp)
OUT=$(mktemp)
cleanup() {
	[ -n "${TP:-}" ] && kill -INT "$TP" 2>/dev/null && wait "$TP" 2>/dev/null
	[ -n "${MP:-}" ] && kill "$MP" 2>/dev/null
	ip netns del "$NS" 2>/dev/null || true
	rm -f "$MON" "$OUT"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link add v0 type veth peer name v1
ip -n "$NS" link set v0 up
ip -n "$NS" link set v1 up
ip -n "$NS" route add default dev v0 table 52
ip -n "$NS" route add throw 192.168.1.0/24 table 52
"$TRACER" guard --json --netns "$NS" --expect 'throw 192.168.1.0/24 table 52' \
	--grace "${GRACE_MS}ms" --repair --repair-limit 1000 >"$OUT" &
TP=$!
until grep -q '"kind":"ready"' "$OUT"; do sleep 0.1; done
ip -n "$NS" -ts monitor route >"$MON" &
MP=$!
sleep 0.5
for _ in $(seq "$ROUNDS"); do
	ip -n "$NS" route del throw 192.168.1.0/24 table 52
	sleep 2.5
done
sleep 0.5
# [2026-12-04T23:09:22.123456] Deleted throw 192.168.1.0/24 table 52 ...
python3 - "$MON" "$GRACE_MS" "$OUT" <<'PY'
import sys, datetime, json, statistics
mon, grace = sys.argv[1], float(sys.argv[2])
t0, lat = None, []
for line in open(mon):
    if "192.168.1.0/24" not in line:
        continue
    ts = datetime.datetime.fromisoformat(line[1:line.index("]")])
    if "Deleted" in line:
        t0 = ts
    elif t0 is not None:
        lat.append((ts - t0).total_seconds() * 1e3 - grace)
        t0 = None
own = [json.loads(l)["ms_after_grace"] for l in open(sys.argv[3]) if '"guard_repair"' in l]
print(f"rounds {len(lat)}: grace end -> route back (ip monitor): "
      f"min {min(lat):.1f} ms, median {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms")
print(f"the tracer's own ms_after_grace (to the kernel's ack): "
      f"min {min(own):.1f}, median {statistics.median(own):.1f}, max {max(own):.1f}")
PY
