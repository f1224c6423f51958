#!/usr/bin/env python3
"""Helpers of bench/soak.sh (issue 16 part 3), which runs them:

  soak.py churn OUT RATE NS...     rule and route churn with `ip -batch`,
                                   paced to RATE changes/s in all; the
                                   changes applied (commands minus ip's
                                   "Command failed" lines) in OUT/churn.json
  soak.py sample OUT LABEL         one row per tracer into OUT/samples.tsv
  soak.py report OUT               the table and the verdict; exit 1 if a
                                   check failed

What each tracer writes is counted by tests/bin/soak_tally.rs, into
OUT/NAME.state.json.
"""
import collections
import json
import os
import re
import subprocess
import sys
import threading
import time



def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.rename(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


# ---------------------------------------------------------------- churn


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


# ---------------------------------------------------------------- sample


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


# ---------------------------------------------------------------- report


def table(rows, cols):
    widths = [max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(cols, widths))]
    for r in rows:
        lines.append("  ".join(str(r.get(c, "")).rjust(w) for c, w in zip(cols, widths)))
    return "\n".join(lines)


def report(out):
    meta = read_json(os.path.join(out, "meta.json"), {})
    rows = []
    with open(os.path.join(out, "samples.tsv")) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(head, line.rstrip("\n").split("\t")))
            for k, v in r.items():
                try:
                    r[k] = int(v)
                except ValueError:
                    try:
                        r[k] = float(v)
                    except ValueError:
                        pass
            rows.append(r)
    # CPU and waits for a CPU per interval, % of one core.
    last = {}
    for r in rows:
        p = last.get(r["tracer"])
        if p and r["t_s"] > p["t_s"]:
            r["cpu_pct"] = round(100 * (r["cpu_s"] - p["cpu_s"]) / (r["t_s"] - p["t_s"]), 1)
            r["wait_pct"] = round(100 * (r["waited_s"] - p["waited_s"]) / (r["t_s"] - p["t_s"]), 1)
        last[r["tracer"]] = r
    cols = ["t_s", "label", "tracer", "rss_kib", "fds", "sockets", "watched", "maps", "progs", "links", "fib_links", "threads", "cpu_s", "cpu_pct", "wait_pct", "behind"]
    print(
        "Samples per tracer (cpu_pct: CPU time since the previous sample, % of one core; wait_pct: time its threads"
        " were runnable but waited for a CPU, likewise; behind: churned changes not yet reported):"
    )
    print(table(rows, cols))
    totals = [r for r in rows if r["tracer"] == "record"]
    prev = None
    for r in totals:
        if prev and r["t_s"] > prev["t_s"]:
            r["kernel_rate"] = round((r["kernel_changes"] - prev["kernel_changes"]) / (r["t_s"] - prev["t_s"]))
        prev = r
    print()
    print("Counts (kernel_changes: applied by the churn; reported_changes: record's events for them; kernel_rate: changes/s since the previous sample):")
    print(table(totals, ["t_s", "label", "kernel_changes", "kernel_rate", "reported_changes", "journal_lines", "lost_ring", "lost_netlink", "journal_dropped"]))
    hosts = []
    try:
        with open(os.path.join(out, "host.jsonl")) as f:
            hosts = [json.loads(line) for line in f]
    except OSError:
        pass
    if hosts:
        print()
        print("CPU besides the tracers, % of one core since the previous sample (host: the whole machine, 2 cores = 200; churn: with its ip processes):")
        keys = []
        for h in hosts:
            keys += [k for k in h if k.endswith("_s") and k != "t_s" and k not in keys]
        prev, hrows = None, []
        for h in hosts:
            r = {"t_s": h["t_s"], "label": h["label"]}
            if prev and h["t_s"] > prev["t_s"]:
                for k in keys:
                    if k in h and k in prev:
                        r[k[:-2]] = round(100 * (h[k] - prev[k]) / (h["t_s"] - prev["t_s"]))
            hrows.append(r)
            prev = h
        print(table(hrows, ["t_s", "label"] + [k[:-2] for k in keys]))
    print()

    checks = []

    def check(ok, text):
        checks.append(ok)
        print(f"{'PASS' if ok else 'FAIL'} {text}")

    churn = read_json(os.path.join(out, "churn.json"), {})
    rec = read_json(os.path.join(out, "record.state.json"), {})
    jour = read_json(os.path.join(out, "journal.state.json"), {})
    wat = read_json(os.path.join(out, "watch.state.json"), {})
    grd = read_json(os.path.join(out, "guard.state.json"), {})
    periods = []
    if os.path.exists(os.path.join(out, "loops.tsv")):
        with open(os.path.join(out, "loops.tsv")) as f:
            for line in f:
                n, icmp_id, looped, healthy_id, replies = line.split()
                periods.append({"id": int(icmp_id), "looped": int(looped), "healthy_id": int(healthy_id), "replies": int(replies)})
    def lines_of(name):
        try:
            with open(os.path.join(out, name)) as f:
                return [line.split() for line in f if line.strip()]
        except OSError:
            return []

    def count_in(name):
        got = lines_of(name)
        return int(got[-1][0]) if got else 0

    fills = lines_of("fills.tsv")
    ephemeral = count_in("ephemeral.count")
    flaps = count_in("flaps.count")
    workers = dict(lines_of("workers.exit"))

    print(
        f"Run: {meta.get('duration')} s of churn in {len(churn.get('namespaces', {}))} namespaces at"
        f" {churn.get('rate', 0):.0f} changes/s (target {churn.get('target_rate')}; {churn.get('applied', 0)} applied,"
        f" {churn.get('failed', 0)} failed commands); {len(periods)} loop periods; {len(fills)} disk fills;"
        f" {ephemeral} namespaces created and destroyed; {flaps} link flaps"
    )
    # The baseline: the first sample at or after the warm-up.
    warm = meta.get("warmup", 300)
    base_t = next((r["t_s"] for r in rows if r["label"] == "periodic" and r["t_s"] >= warm - 2), None)
    end = [r for r in rows if r["label"] == "end"]
    short = meta.get("duration", 0) < 600
    if short:
        print(f"(a run shorter than 10 min: the baseline is the first sample after a {warm} s warm-up, t={base_t} s, not 5 min)")
    else:
        print(f"(the baseline is the first sample after the {warm} s warm-up, t={base_t} s)")
    if base_t is None or not end:
        check(False, "samples: no baseline sample after the warm-up or no end sample")
    else:
        for name in ("record", "guard", "watch"):
            mine = [r for r in rows if r["tracer"] == name]
            b = next(r for r in mine if r["t_s"] == base_t and r["label"] == "periodic")
            e = next(r for r in mine if r["label"] == "end")
            later = [r for r in mine if r["t_s"] > base_t or r["label"] == "end"]
            peak = max(later, key=lambda r: r["rss_kib"])
            growth = 100 * (peak["rss_kib"] - b["rss_kib"]) / b["rss_kib"] if b["rss_kib"] else 100
            if short:
                # A minute after the start, a small RSS has not settled:
                # 5% of 15 MiB is allocator noise.
                ok, limit = growth <= 5 or peak["rss_kib"] - b["rss_kib"] <= 1024, "5% or 1 MiB in a run under 10 min"
            else:
                ok, limit = growth <= 5, "5%"
            check(
                ok,
                f"{name}: RSS {b['rss_kib']} KiB at t={base_t} s, highest after it {peak['rss_kib']} KiB (t={peak['t_s']} s),"
                f" end {e['rss_kib']} KiB: growth {growth:+.1f}% (limit {limit})",
            )
            # Two netlink sockets per watched namespace come and go with
            # the namespaces, and the FIB lookup links with loops;
            # everything else must be as it was.
            bf = b["fds"] - 2 * b["watched"] - b["fib_links"]
            ef = e["fds"] - 2 * e["watched"] - e["fib_links"]
            check(
                bf == ef,
                f"{name}: descriptors {b['fds']} at t={base_t} s ({b['watched']} namespaces watched, {b['fib_links']} FIB lookup links),"
                f" {e['fds']} at the end ({e['watched']} watched, {e['fib_links']} FIB lookup links):"
                f" {bf} and {ef} besides 2 sockets per watched namespace and the FIB lookup links",
            )
            bb = (b["maps"], b["progs"], b["links"] - b["fib_links"])
            eb = (e["maps"], e["progs"], e["links"] - e["fib_links"])
            check(
                bb == eb,
                f"{name}: BPF maps/programs/links held {'/'.join(map(str, bb))} at t={base_t} s, {'/'.join(map(str, eb))} at the end"
                f" (besides the FIB lookup links: {b['fib_links']} and {e['fib_links']})",
            )
            if name == "watch":
                quiet = read_json(os.path.join(out, "end.json"), {}).get("since_last_loop")
                check(
                    e["fib_links"] == 0,
                    f"watch: FIB lookup tracing off at the end, {quiet} s after the last looped packet (it stops 30 s after):"
                    f" {e['fib_links']} FIB lookup links",
                )

    k = churn.get("applied", 0)
    applied = {ns.rsplit("-", 1)[-1]: v.get("applied") for ns, v in churn.get("namespaces", {}).items()}

    def reported(name, st, verb):
        got = st.get("churn_changes", 0)
        lost = st.get("lost", {})
        turn = st.get("churn_out_of_turn", 0)
        check(
            got == k and turn == 0,
            f"{name}: {got} churned changes {verb}, the kernel made {k} (per namespace: "
            + ", ".join(f"{ns} {sum(c.values())}/{applied.get(ns, '?')}" for ns, c in st.get("churn", {}).items())
            + f"); {turn} out of turn (a route added or removed twice in a row: see {name}.odd.jsonl);"
            f" lost records reported: ring buffer {lost.get('ring_buffer', 0)}, netlink socket {lost.get('netlink_socket', 0)};"
            f" {st.get('churn_no_process', 0)} without their process, {st.get('churn_not_ok', 0)} without result ok",
        )

    reported("record", rec, "reported")
    j = jour.get("churn_changes", 0)
    dropped = rec.get("journal_dropped", 0)
    missing_lines = rec.get("lines", 0) - jour.get("lines", 0)
    check(
        missing_lines == dropped and (j == k or k - j <= dropped) and (dropped > 0 or jour.get("churn_out_of_turn", 0) == 0),
        f"journal: {j} churned changes, the kernel made {k} (difference {k - j}); record emitted {rec.get('lines', 0)} lines,"
        f" the journal holds {jour.get('lines', 0)} ({jour.get('files', '?')} files): {missing_lines} missing,"
        f" journal_resumed reported {dropped} dropped ({rec.get('kinds', {}).get('journal_error', 0)} journal_error,"
        f" {rec.get('kinds', {}).get('journal_resumed', 0)} journal_resumed)",
    )
    if fills:
        check(
            rec.get("kinds", {}).get("journal_resumed", 0) == rec.get("kinds", {}).get("journal_error", 0) >= 1,
            f"journal: the disk was filled {len(fills)} times; every journal_error was followed by a journal_resumed",
        )
    reported("watch", wat, "reported")
    reported("guard", grd, "seen")
    looping = [p for p in periods if p["looped"] > 0]
    lab = meta.get("router")
    loops = [x for x in wat.get("loops", []) if x["netns"] == lab and x["iface"] == "tailscale0"]
    want_ids = sorted(p["id"] for p in looping)
    got_ids = sorted(x["icmp_id"] for x in loops)
    healthy_loops = [x for x in loops if x["icmp_id"] in {p["healthy_id"] for p in periods}]
    check(
        len(looping) == len(periods) and got_ids == want_ids and not healthy_loops and len(periods) > 0,
        f"loops: {len(periods)} loop periods, the peer saw packets loop in {len(looping)}; watch reported {len(loops)} loops"
        f" on {lab}:tailscale0 (echo ids {got_ids}, wanted {want_ids}); {len(healthy_loops)} for healthy pings",
    )
    bad_suspects = [x for x in loops if x["suspect"] != "192.168.1.0/24"]
    check(not bad_suspects, f"loops: each names the removal of throw 192.168.1.0/24 as its suspect ({len(bad_suspects)} do not)")
    answered = [p for p in periods if p["replies"] > 0]
    check(len(answered) == len(periods), f"lab: {len(answered)} of {len(periods)} healthy pings after the throw route came back were answered")
    gv, gr = grd.get("guard", {}).get("guard_violation", 0), grd.get("guard", {}).get("guard_restored", 0)
    check(gv == len(periods) and gr == gv, f"guard: {gv} violations and {gr} restorations for {len(periods)} loop periods")
    en, eg = rec.get("ephemeral_new", 0), rec.get("ephemeral_gone", 0)
    check(
        en == ephemeral and eg == ephemeral,
        f"namespaces: {ephemeral} created and destroyed, record reported {en} netns_new and {eg} netns_gone under their"
        f" names ({rec.get('kinds', {}).get('netns_new', 0)} netns_new in all, the host's other namespaces included)",
    )
    # Metrics series of namespaces that are gone are memory that grows with
    # every container ever started.
    stale = {}
    for name in ("record", "guard", "watch"):
        try:
            with open(os.path.join(out, f"{name}.metrics")) as f:
                text = f.read()
        except OSError:
            text = ""
        if "tracer_build_info" not in text:
            stale[name] = "no answer from /metrics within 30 s"
        else:
            stale[name] = len(re.findall(r'netns="' + re.escape(meta.get("prefix", "?")) + r'-e\d+"', text))
    check(
        all(v == 0 for v in stale.values()),
        f"metrics: series left for namespaces that are gone (record, guard, watch): {stale}",
    )
    check(
        sorted(workers) == ["cycler", "filler", "flapper", "looper"] and set(workers.values()) == {"0"},
        f"workload: every worker ran to the end (exit status {workers})",
    )
    exits = read_json(os.path.join(out, "exits.json"), {})
    check(all(v == 0 for v in exits.values()) and len(exits) == 3, f"tracers stopped with SIGINT exited with {exits}")
    print(f"{'PASS' if all(checks) else 'FAIL'} soak: {checks.count(True)} of {len(checks)} checks passed; output in {out}")
    return 0 if all(checks) else 1


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "churn":
        churn(args[0], float(args[1]), args[2:])
    elif cmd == "sample":
        sample(args[0], args[1])
    elif cmd == "report":
        sys.exit(report(args[0]))
    else:
        sys.exit(f"soak.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
