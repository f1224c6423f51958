#!/usr/bin/env python3
"""The verdict of bench/soak.sh (issue 16 part 3):

  soak_verdict.py OUT              the samples' tables and the checks, each
                                   line PASS or FAIL; exit 1 if a check
                                   failed
"""
import json
import os
import re
import sys

from soak_files import read_json


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
            # everything else must be no more than it was (one fewer is
            # not a leak: record held one descriptor from its start until
            # after the warm-up sample in a 6-minute run).
            bf = b["fds"] - 2 * b["watched"] - b["fib_links"]
            ef = e["fds"] - 2 * e["watched"] - e["fib_links"]
            check(
                ef <= bf,
                f"{name}: descriptors {b['fds']} at t={base_t} s ({b['watched']} namespaces watched, {b['fib_links']} FIB lookup links),"
                f" {e['fds']} at the end ({e['watched']} watched, {e['fib_links']} FIB lookup links):"
                f" {bf} and {ef} besides 2 sockets per watched namespace and the FIB lookup links (no more at the end)",
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
            + f"); {turn} out of turn (a route added or removed twice in a row: see {name}.odd.jsonl, and {name}.context.jsonl for the lines around the first);"
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


if __name__ == "__main__":
    sys.exit(report(sys.argv[1]))
