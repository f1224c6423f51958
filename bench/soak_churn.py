#!/usr/bin/env python3
"""The churn of bench/soak.sh (issue 16 part 3):

  soak_churn.py OUT RATE NS...     rule and route churn with `ip -batch`,
                                   paced to RATE changes/s in all; the
                                   changes applied (commands minus ip's
                                   "Command failed" lines) in OUT/churn.json;
                                   it stops when OUT/stop exists
"""
import json
import os
import subprocess
import sys
import threading
import time

from soak_files import write_json


# Per namespace and batch: routes added (then removed), of which some are
# replaced in between, and rules added (then removed). Small batches, run
# often, rather than large ones: one `ip -batch` sends its requests as fast
# as the kernel takes them, and a burst of thousands fills the tracers'
# ring buffers however low the average rate.
ROUTES4, REPLACED4, RULES4, ROUTES6, RULES6 = 200, 20, 20, 40, 4


def batch_files(out, k, ns):
    """The IPv4 and IPv6 batches of namespace number k: each adds its
    routes and rules, replaces some routes, then removes them all, so it
    can run again and again. Returns [(path, family flag, commands)]."""
    v4, v6 = [], []
    for i in range(ROUTES4):
        v4.append(f"route add 10.{k}.{i >> 8}.{i & 255}/32 dev d0 table 100")
    for i in range(REPLACED4):
        v4.append(f"route replace 10.{k}.0.{i}/32 dev d1 table 100")
    for i in range(RULES4):
        v4.append(f"rule add pref {1000 + i} from 10.{k}.{i}.0/24 table 100")
    for i in range(ROUTES4):
        v4.append(f"route del 10.{k}.{i >> 8}.{i & 255}/32 table 100")
    for i in range(RULES4):
        v4.append(f"rule del pref {1000 + i} from 10.{k}.{i}.0/24 table 100")
    for i in range(ROUTES6):
        v6.append(f"route add 2001:db8:{k}::{i:x}/128 dev d0 table 100")
    for i in range(RULES6):
        v6.append(f"rule add pref {2000 + i} from 2001:db8:{k}:{i:x}::/64 table 100")
    for i in range(ROUTES6):
        v6.append(f"route del 2001:db8:{k}::{i:x}/128 table 100")
    for i in range(RULES6):
        v6.append(f"rule del pref {2000 + i} from 2001:db8:{k}:{i:x}::/64 table 100")
    files = []
    for fam, cmds in (("-4", v4), ("-6", v6)):
        path = os.path.join(out, f"churn-{ns}{fam}.batch")
        with open(path, "w") as f:
            f.write("\n".join(cmds) + "\n")
        files.append((path, fam, len(cmds)))
    return files


def churn(out, rate, names):
    stop = os.path.join(out, "stop")
    per_ns = rate / len(names)
    state = {n: {"applied": 0, "failed": 0, "batches": 0, "errors": []} for n in names}
    lock = threading.Lock()
    start = time.monotonic()

    def worker(k, ns):
        files = batch_files(out, k, ns)
        t0 = time.monotonic()
        applied = 0
        while not os.path.exists(stop):
            for path, fam, n in files:
                # -force: go on after a failed command; each failure is one
                # "Command failed FILE:LINE" line on stderr.
                p = subprocess.run(
                    ["ip", fam, "-n", ns, "-force", "-batch", path],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                err = p.stderr.decode(errors="replace")
                failed = err.count("Command failed")
                applied += n - failed
                with lock:
                    s = state[ns]
                    s["applied"] += n - failed
                    s["failed"] += failed
                    s["batches"] += 1
                    if failed and len(s["errors"]) < 20:
                        s["errors"].append(err.strip()[:500])
            # Pace to this namespace's share of the rate.
            ahead = t0 + applied / per_ns - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    threads = [
        threading.Thread(target=worker, args=(k, ns), daemon=True)
        for k, ns in enumerate(names, 1)
    ]
    for t in threads:
        t.start()

    def save(final):
        with lock:
            snap = json.loads(json.dumps(state))
        total = sum(s["applied"] for s in snap.values())
        elapsed = time.monotonic() - start
        write_json(
            os.path.join(out, "churn.json"),
            {
                "namespaces": snap,
                "applied": total,
                "failed": sum(s["failed"] for s in snap.values()),
                "elapsed": elapsed,
                "rate": total / elapsed if elapsed > 0 else 0,
                "target_rate": rate,
                "final": final,
            },
        )

    while any(t.is_alive() for t in threads):
        save(False)
        time.sleep(0.25)
    save(True)


if __name__ == "__main__":
    churn(sys.argv[1], float(sys.argv[2]), sys.argv[3:])
