#!/usr/bin/env python3
"""Capture what a real systemd-networkd (Debian 12's 252) sends.

    python3 networkd.py networkd.spec ../networkd.forms

A scratch namespace gets setup.ip and every `pre` line of the spec (the
"foreign" rules and routes networkd removes), then networkd runs in it for
8 s with networkd/10-d0.network (networkd/inside.sh). Each case's `pick`
line names the captured message it is about (`RTM_NEWRULE inet 5400`, by
priority; `RTM_DELROUTE 10.97.0.0/16`, by destination), which becomes its
`msg` line.
"""
import ipaddress
import os
import subprocess
import sys

import capture

HERE = os.path.dirname(os.path.abspath(__file__))
FAM = {2: "inet", 10: "inet6"}


def attrs(m):
    off = 28
    while off + 4 <= len(m):
        n = int.from_bytes(m[off:off + 2], "little")
        t = int.from_bytes(m[off + 2:off + 4], "little") & 0x3fff
        if n < 4:
            break
        yield t, m[off + 4:off + n]
        off += (n + 3) & ~3


def key(m):
    kind = capture.KEEP[int.from_bytes(m[4:6], "little")]
    fam = m[16]
    if "RULE" in kind:
        prio = [int.from_bytes(v, "little") for t, v in attrs(m) if t == 6]
        return f"{kind} {FAM.get(fam, fam)} {prio[0] if prio else '-'}"
    dst = [v for t, v in attrs(m) if t == 1]
    addr = ipaddress.ip_address(bytes(dst[0])) if dst else ("0.0.0.0" if fam == 2 else "::")
    return f"{kind} {addr}/{m[17]}"


def main():
    spec, out = sys.argv[1], sys.argv[2]
    blocks = capture.read_blocks(spec)
    pre = [l[4:] for b in blocks for l in b if l.startswith("pre ")]
    ns = capture.scratch(pre)
    trace = f"/tmp/forms-networkd-{os.getpid()}.strace"
    network = os.path.join(HERE, "networkd", "10-d0.network")
    subprocess.run(["ip", "netns", "exec", ns, "unshare", "-m",
                    os.path.join(HERE, "networkd", "inside.sh"), network, trace],
                   capture_output=True)
    subprocess.run(["ip", "netns", "del", ns])
    found = {}
    for name, bufs in capture.parse_strace(trace):
        for m in capture.split_msgs(b"".join(bufs)):
            if int.from_bytes(m[4:6], "little") in capture.KEEP:
                found.setdefault(key(m), (name, len(bufs), m))
    os.unlink(trace)
    for k in found:
        print("captured", k)
    with open(out, "w") as o:
        o.write(f"# Captured by tests/forms/capture/networkd.py from {os.path.basename(spec)}\n")
        o.write("# (format: tests/forms/README.md). Do not edit the msg lines by hand.\n\n")
        for b in blocks:
            pick = [l[5:] for l in b if l.startswith("pick ")][0]
            if pick not in found:
                raise SystemExit(f"{b[0]}: networkd sent no {pick}")
            name, niov, m = found[pick]
            for l in b:
                o.write(l + "\n")
            o.write("capture ip netns exec NS unshare -m capture/networkd/inside.sh "
                    "capture/networkd/10-d0.network OUT (inside.sh: "
                    + " ".join(capture.STRACE) + " -o OUT /lib/systemd/systemd-networkd)\n")
            o.write(f"send {'sendmsg-iov' if name == 'sendmsg' and niov > 1 else name}\n")
            o.write(f"msg {m.hex()}  # {pick}\n\n")


if __name__ == "__main__":
    main()
