#!/usr/bin/env python3
"""The samples of bench/soak.sh (issue 16 part 3):

  soak_sample.py OUT LABEL         one row per tracer into OUT/samples.tsv
                                   (RSS, descriptors by kind, BPF objects,
                                   threads, CPU and waits for a CPU, changes
                                   behind), the machine's and the helpers'
                                   CPU into OUT/host.jsonl

The counts of what each tracer wrote are tests/bin/soak_tally.rs's, in
OUT/NAME.state.json.
"""
import collections
import json
import os
import re
import subprocess
import sys
import time

from soak_files import read_json


def proc(pid):
    """RSS (KiB), threads, CPU seconds, descriptors by kind."""
    hz = os.sysconf("SC_CLK_TCK")
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rfind(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / hz
    # Time its threads were runnable but waited for a CPU.
    waited = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            waited += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    kinds = collections.Counter()
    link_progs = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target == "anon_inode:bpf-map":
            kinds["maps"] += 1
        elif target == "anon_inode:bpf-prog":
            kinds["progs"] += 1
        elif target == "anon_inode:bpf_link":
            kinds["links"] += 1
            try:
                info = open(f"/proc/{pid}/fdinfo/{fd}").read()
                link_progs.append(int(re.search(r"^prog_id:\s+(\d+)", info, re.M).group(1)))
            except (OSError, AttributeError):
                pass
        elif target.startswith("socket:"):
            kinds["sockets"] += 1
        kinds["fds"] += 1
    # The links of the FIB lookup programs, attached while a loop lasts and
    # 30 s after its last packet.
    kinds["fib_links"] = sum(1 for i in link_progs if prog_names().get(i) in ("fib4_lookup", "fib6_lookup"))
    return {"rss_kib": rss, "threads": threads, "cpu_s": round(cpu, 2), "waited_s": round(waited / 1e9, 2), **kinds}


_PROG_NAMES = {}


def prog_names():
    """Program id -> name, from bpftool (once per sample)."""
    if not _PROG_NAMES:
        try:
            out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, check=True).stdout
            _PROG_NAMES.update({p["id"]: p.get("name") for p in json.loads(out)})
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass
    return _PROG_NAMES


SAMPLE_COLUMNS = [
    "t_s", "label", "tracer", "pid", "rss_kib", "fds", "sockets", "watched",
    "maps", "progs", "links", "fib_links", "threads", "cpu_s", "waited_s", "kernel_changes",
    "reported_changes", "behind", "journal_lines", "lost_ring", "lost_netlink",
    "journal_dropped", "loops",
]


def sample(out, label):
    meta = read_json(os.path.join(out, "meta.json"), {})
    t = round(time.time() - meta.get("t0", time.time()))
    kernel = read_json(os.path.join(out, "churn.json"), {}).get("applied", 0)
    journal = read_json(os.path.join(out, "journal.state.json"), {})
    path = os.path.join(out, "samples.tsv")
    new = not os.path.exists(path)
    rows = []
    for name, state_name in (("record", "record"), ("guard", "guard"), ("watch", "watch")):
        pid = meta["pids"][name]
        try:
            p = proc(pid)
        except (FileNotFoundError, ProcessLookupError, AttributeError):
            p = {}
        st = read_json(os.path.join(out, f"{state_name}.state.json"), {})
        rows.append(
            {
                "t_s": t,
                "label": label,
                "tracer": name,
                "pid": pid,
                **{k: p.get(k, 0) for k in ("rss_kib", "fds", "sockets", "maps", "progs", "links", "fib_links", "threads", "cpu_s", "waited_s")},
                "watched": st.get("watched", 0),
                "kernel_changes": kernel,
                "reported_changes": st.get("churn_changes", 0),
                "behind": kernel - st.get("churn_changes", 0),
                "journal_lines": journal.get("lines", 0) if name == "record" else "",
                "lost_ring": st.get("lost", {}).get("ring_buffer", 0),
                "lost_netlink": st.get("lost", {}).get("netlink_socket", 0),
                "journal_dropped": st.get("journal_dropped", 0) if name == "record" else "",
                "loops": len(st.get("loops", [])),
            }
        )
    # The machine's and the soak's own CPU (churn with its ip children,
    # tallies), in seconds, to see what the tracers competed with.
    hz = os.sysconf("SC_CLK_TCK")
    cpu = open("/proc/stat").readline().split()[1:]
    host = {"t_s": t, "label": label, "host_busy_s": round((sum(map(int, cpu[:8])) - int(cpu[3]) - int(cpu[4])) / hz, 1)}
    try:
        with open(os.path.join(out, "helpers.pids")) as f:
            for line in f:
                name, pid = line.split()
                try:
                    st = open(f"/proc/{pid}/stat").read()
                    fields = st[st.rfind(")") + 2 :].split()
                    host[name + "_s"] = round(sum(int(x) for x in fields[11:15]) / hz, 1)
                except OSError:
                    pass
    except OSError:
        pass
    with open(os.path.join(out, "host.jsonl"), "a") as f:
        f.write(json.dumps(host) + "\n")
    with open(path, "a") as f:
        if new:
            f.write("\t".join(SAMPLE_COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(str(r[c]) for c in SAMPLE_COLUMNS) + "\n")
    for r in rows:
        print(
            f"[soak] {r['t_s']:>5} s {label:<8} {r['tracer']:<6} RSS {r['rss_kib']:>7} KiB  fds {r['fds']:>3}"
            f" (sockets {r['sockets']}, watched ns {r['watched']})  bpf maps/progs/links"
            f" {r['maps']}/{r['progs']}/{r['links']}  CPU {r['cpu_s']:>8.2f} s  changes: kernel {kernel}"
            f" reported {r['reported_changes']} (behind {r['behind']})",
            flush=True,
        )


if __name__ == "__main__":
    sample(sys.argv[1], sys.argv[2])
