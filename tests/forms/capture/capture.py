#!/usr/bin/env python3
"""Capture real request bytes for tests/forms/*.forms.

    python3 capture.py SPEC OUT        # iproute2-style spec: `cmd`/`batch`/`run` lines

For each case of SPEC, a scratch namespace gets the shared setup
(tests/forms/setup.ip) and the case's `pre` lines, then the case's command
runs under strace:

    strace -f -e trace=sendmsg,sendto,sendmmsg -e write=all -xx -s 4096 ...

The rtnetlink rule and route requests (RTM_NEWROUTE, RTM_DELROUTE,
RTM_NEWRULE, RTM_DELRULE) found in what was written are stored as `msg`
lines, grouped by syscall (`dgram`), with the `send` mode the client used.
Other messages (link lookups, dumps) are left out.
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FORMS = os.path.dirname(HERE)
STRACE = ["strace", "-f", "-e", "trace=sendmsg,sendto,sendmmsg", "-e", "write=all",
          "-xx", "-s", "4096"]
KEEP = {24: "RTM_NEWROUTE", 25: "RTM_DELROUTE", 32: "RTM_NEWRULE", 33: "RTM_DELRULE"}


def setup_lines():
    out = []
    with open(os.path.join(FORMS, "setup.ip")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("setup "):
                out.append(line[len("setup "):])
    return out


def ip(ns, args, check=True):
    r = subprocess.run(["ip", "-n", ns] + args.split(), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"ip -n {ns} {args}: {r.stderr}")
    return r


def scratch(pre):
    ns = f"forms-cap-{os.getpid()}"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    for a in setup_lines() + pre:
        ip(ns, a)
    return ns


def parse_strace(path):
    """[(syscall, [buffer bytes, ...]), ...] in the order written."""
    calls = []
    buf = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(sendmsg|sendto|sendmmsg)\(", line)
            if m:
                calls.append((m.group(1), []))
                buf = None
                if m.group(1) == "sendto":  # its dump has no "* N bytes" line
                    buf = bytearray()
                    calls[-1][1].append(buf)
                continue
            m = re.match(r"^\s*\* (\d+) bytes in buffer (\d+)", line)
            if m and calls:
                buf = bytearray()
                calls[-1][1].append(buf)
                continue
            if line.lstrip().startswith("| ") and buf is not None:
                i = line.index("|")
                hexpart = line[i + 9:i + 9 + 49]
                buf.extend(bytes.fromhex("".join(hexpart.split())))
    return calls


def split_msgs(data):
    out, off = [], 0
    while len(data) - off >= 16:
        n = int.from_bytes(data[off:off + 4], "little")
        if n < 16 or n > len(data) - off:
            break
        out.append(bytes(data[off:off + n]))
        off += (n + 3) & ~3
    return out


def capture(argv, ns):
    with tempfile.NamedTemporaryFile(suffix=".strace", delete=False) as t:
        path = t.name
    cmd = STRACE + ["-o", path] + argv
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, NS=ns))
    calls = parse_strace(path)
    os.unlink(path)
    dgrams, modes = [], set()
    for name, bufs in calls:
        if name == "sendmmsg":
            groups = [[b] for b in bufs]
        else:
            groups = [bufs]
        for g in groups:
            msgs = [m for m in split_msgs(b"".join(g))
                    if int.from_bytes(m[4:6], "little") in KEEP]
            if msgs:
                dgrams.append(msgs)
                if name == "sendmsg" and len(g) > 1:
                    modes.add("sendmsg-iov")
                else:
                    modes.add(name)
    return r, dgrams, modes


def read_blocks(spec):
    """The cases of a spec file, each a list of its lines."""
    out, cur = [], None
    with open(spec) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("case "):
                cur = [line]
                out.append(cur)
            elif cur is not None and line.strip() and not line.startswith("#"):
                cur.append(line)
    return out


def main():
    spec, out = sys.argv[1], sys.argv[2]
    blocks = read_blocks(spec)
    with open(out, "w") as o:
        o.write(f"# Captured by tests/forms/capture/capture.py from {os.path.basename(spec)}\n")
        o.write("# (format: tests/forms/README.md). Do not edit the msg lines by hand.\n\n")
        for b in blocks:
            name = b[0].split()[1]
            pre = [l[4:] for l in b if l.startswith("pre ")]
            cmd = [l[4:] for l in b if l.startswith("cmd ")]
            batch = [l[6:] for l in b if l.startswith("batch ")]
            run = [l[4:] for l in b if l.startswith("run ")]
            ns = scratch(pre)
            bf = None
            if cmd:
                argv = ["ip", "-n", ns] + cmd[0].split()
                shown = "ip -n NS " + cmd[0]
            elif batch:
                bf = tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False)
                bf.write("\n".join(batch) + "\n")
                bf.close()
                # -force: go on after a failing line (raw cases may want one).
                force = ["-force"] if any(l == "client raw" for l in b) else []
                argv = ["ip", "-n", ns] + force + ["-batch", bf.name]
                shown = f"ip -n NS {' '.join(force + [''])}-batch FILE (the batch lines)"
            else:
                argv = ["sh", "-c", run[0]]
                shown = run[0]
            r, dgrams, modes = capture(argv, ns)
            if bf:
                os.unlink(bf.name)
            subprocess.run(["ip", "netns", "del", ns])
            if not dgrams:
                raise SystemExit(f"{name}: nothing captured: {r.stderr}")
            mode = "sendmsg" if modes == {"sendmsg"} else "+".join(sorted(modes))
            # Raw senders: the captured messages regrouped (`group 2,1`:
            # two messages in the first datagram, one in the second) and
            # sent the way `mode` says.
            over = [l.split()[1] for l in b if l.startswith("mode ")]
            group = [l.split()[1] for l in b if l.startswith("group ")]
            if over:
                mode = over[0]
            if group:
                flat = [m for d in dgrams for m in d]
                sizes = [int(x) for x in group[0].split(",")]
                if sum(sizes) != len(flat):
                    raise SystemExit(f"{name}: group {group[0]} but {len(flat)} messages")
                dgrams, i = [], 0
                for n in sizes:
                    dgrams.append(flat[i:i + n])
                    i += n
            o.write(b[0] + "\n")
            for l in b[1:]:
                o.write(l + "\n")
            o.write(f"capture {' '.join(STRACE)} {shown}\n")
            o.write(f"send {mode}\n")
            for i, d in enumerate(dgrams):
                if i:
                    o.write("dgram\n")
                for m in d:
                    o.write(f"msg {m.hex()}  # {KEEP[int.from_bytes(m[4:6], 'little')]}\n")
            o.write("\n")
            print(f"{name}: {sum(len(d) for d in dgrams)} message(s), {mode}, exit {r.returncode}")


if __name__ == "__main__":
    main()
