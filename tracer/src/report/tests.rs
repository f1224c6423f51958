//! The report of the lab's real recordings (tests/fixtures), and of
//! synthetic journals for what the lab does not show.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{
    build,
    model::{FateState, Item, Report},
    select::Select,
    text::{Zone, render},
};
use crate::{
    cli::{Cli, Command, ReportArgs},
    journal::read::{Entry, Location, Problem, Reader, parse_line},
    netlink::names::TableNames,
    when::Window,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The filters of a `tracer report` command line.
fn select(args: &[&str]) -> Select {
    use clap::Parser as _;
    let cli = Cli::try_parse_from([&["tracer", "report"], args].concat()).unwrap();
    let Command::Report(a) = cli.command else {
        unreachable!()
    };
    let a: ReportArgs = a;
    Select::from_args(&a, &TableNames::default()).unwrap()
}

/// Line `n` (1-based) of a fixture, as JSON.
pub(super) fn fixture_line(name: &str, n: usize) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    serde_json::from_str(text.lines().nth(n - 1).unwrap()).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn report_of(files: Vec<PathBuf>, window: Window, sel: &Select) -> Report {
    let (entries, problems) = Reader::new(files.clone()).read_all();
    build(entries, problems, &files, window, sel, Duration::seconds(2))
}

fn incident(sel: &Select) -> Report {
    report_of(vec![fixture("lab-incident.jsonl")], Window::default(), sel)
}

/// The report's text without its first line (which names the file by its
/// absolute path).
fn body(r: &Report) -> String {
    let t = render(r, Zone::Utc);
    t.split_once('\n').unwrap().1.to_string()
}

#[test]
fn the_incident_lab_renders_as_its_story() {
    let r = incident(&Select::default());
    let t = render(&r, Zone::Utc);
    assert!(t.starts_with(&format!(
        "Report of {}: 15 events from 2026-11-24 22:32:38 to 22:32:43\n",
        fixture("lab-incident.jsonl").display()
    )));
    assert_eq!(
        body(&r),
        "\
Namespace: rep-2692-r
Times are UTC.

-- 2026-11-24 --
22:32:38  tracer started (pid 2743, version 0.1.0), watching netns rep-2692-r
22:32:39  systemd-network (pid 2772) removed 4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24 table 52)
          restored at 22:32:40 by tailscaled (pid 2783): 4 rules (5210, 5230, 5250, 5270)
          still missing: inet throw 192.168.1.0/24 table 52 proto boot
22:32:40  tailscaled (pid 2783) added 4 rules (5210, 5230, 5250, 5270)
          puts back what systemd-network (pid 2772) removed at 22:32:39: 4 rules (5210, 5230, 5250, 5270)
22:32:41  LOOP on tailscale0: 100.119.140.15 > 192.168.1.90 icmp comes back out of tailscale0 from 100.98.98.126 (rule 5270 -> table 52 -> default dev tailscale0)
          suspect: throw 192.168.1.0/24 table 52 removed at 22:32:39 by systemd-network (pid 2772), still missing
          25 packets looped, until 22:32:43

Still missing at the end (2026-11-24 22:32:43):
  inet throw 192.168.1.0/24 table 52 proto boot, removed at 2026-11-24 22:32:39 by systemd-network (pid 2772)
"
    );
}

#[test]
fn the_incident_lab_as_json() {
    let r = incident(&Select::default());
    let v: Value = serde_json::to_value(&r).unwrap();
    let types: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["session", "episode", "episode", "loop"]);
    let flush = &v["timeline"][1];
    assert_eq!(flush["actor"]["comm"], "systemd-network");
    assert_eq!(flush["actor"]["pids"], json!([2772]));
    assert_eq!(flush["start"], "2026-11-24T22:32:39.786625Z");
    let removed = flush["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 5);
    for r in &removed[..4] {
        assert_eq!(r["fate"]["state"], "restored");
        assert_eq!(r["fate"]["by"]["comm"], "tailscaled");
    }
    assert_eq!(removed[4]["route"]["dst"], "192.168.1.0/24");
    assert_eq!(
        removed[4]["fate"],
        json!({"state": "missing", "ts": null, "by": null})
    );
    let restore = &v["timeline"][2];
    assert_eq!(
        restore["added"][0]["restores"]["by"]["comm"],
        "systemd-network"
    );
    assert_eq!(
        restore["added"][0]["restores"]["ts"],
        "2026-11-24T22:32:39.786625Z"
    );
    let lp = &v["timeline"][3];
    assert_eq!(lp["iface"], "tailscale0");
    assert_eq!(lp["packets"], 25);
    assert_eq!(lp["ended"], "2026-11-24T22:32:43.724509Z");
    assert_eq!(lp["suspect"]["route"]["type"], "throw");
    assert_eq!(lp["suspect"]["fate"]["state"], "missing");
    assert_eq!(v["missing"].as_array().unwrap().len(), 1);
    assert_eq!(v["missing"][0]["route"]["dst"], "192.168.1.0/24");
    assert_eq!(v["missing"][0]["removed_by"]["pids"], json!([2772]));
    assert_eq!(v["problems"], json!([]));
}

#[test]
fn the_recovered_lab_restores_the_throw_route_later() {
    let dir = fixture("lab-recovered.journal");
    let files = crate::journal::read::journal_files(&dir).unwrap();
    let r = report_of(files.clone(), Window::default(), &Select::default());
    assert!(r.missing.is_empty());
    let t = body(&r);
    assert!(t.contains(
        "          restored at 22:32:58 by tailscaled (pid 3040): 1 route (throw 192.168.1.0/24 table 52)\n"
    ), "{t}");
    assert!(t.contains(
        "          suspect: throw 192.168.1.0/24 table 52 removed at 22:32:51 by systemd-network (pid 2915), restored at 22:32:58 by tailscaled (pid 3040)\n"
    ), "{t}");
    assert!(t.contains(
        "22:32:58  tailscaled (pid 3040) added 1 route (throw 192.168.1.0/24 table 52)\n          puts back what systemd-network (pid 2915) removed at 22:32:51: 1 route (throw 192.168.1.0/24 table 52)\n"
    ), "{t}");
    assert!(t.ends_with(
        "Nothing removed in this window is missing at its end (2026-11-24 22:32:58).\n"
    ));

    // Until before the fix: still missing then.
    let w = Window {
        since: None,
        until: Some(utc("2026-11-24T22:32:57Z")),
    };
    let r = report_of(files, w, &Select::default());
    assert_eq!(r.end, Some(utc("2026-11-24T22:32:57Z")));
    let t = body(&r);
    assert!(
        t.contains("Window: the start to 2026-11-24 22:32:57\n"),
        "{t}"
    );
    assert!(t.ends_with(
        "Still missing at the end (2026-11-24 22:32:57):\n  inet throw 192.168.1.0/24 table 52 proto boot, removed at 2026-11-24 22:32:51 by systemd-network (pid 2915)\n"
    ), "{t}");
}

#[test]
fn since_cuts_the_removal_out_so_the_restore_undoes_nothing_seen() {
    let w = Window {
        since: Some(utc("2026-11-24T22:32:40Z")),
        until: None,
    };
    let r = report_of(vec![fixture("lab-incident.jsonl")], w, &Select::default());
    assert_eq!(r.events, 9);
    let t = body(&r);
    assert!(
        t.contains(
            "22:32:40  tailscaled (pid 2783) added 4 rules (5210, 5230, 5250, 5270)\n22:32:41  LOOP"
        ),
        "{t}"
    );
    assert!(!t.contains("puts back"), "{t}");
    // The suspect's removal is before the window: its fate is not known.
    assert!(
        t.contains("by systemd-network (pid 2772)\n          25 packets"),
        "{t}"
    );
    assert!(
        t.contains("Nothing removed in this window is missing at its end"),
        "{t}"
    );
}

#[test]
fn a_window_with_nothing_in_it() {
    let w = Window {
        since: Some(utc("2030-01-01T00:00:00Z")),
        until: None,
    };
    let r = report_of(vec![fixture("lab-incident.jsonl")], w, &Select::default());
    let t = body(&r);
    assert_eq!(r.events, 0);
    assert!(t.contains("Nothing to report in this window.\n"), "{t}");
    assert!(t.contains("is missing at its end (?)"), "{t}");
}

#[test]
fn table_filter_keeps_table_52_and_its_loop() {
    let r = incident(&select(&["--table", "52"]));
    let t = body(&r);
    assert!(t.contains(
        "22:32:39  systemd-network (pid 2772) removed 1 rule (5270) and 1 route (throw 192.168.1.0/24 table 52)\n"
    ), "{t}");
    assert!(
        t.contains("22:32:40  tailscaled (pid 2783) added 1 rule (5270)\n"),
        "{t}"
    );
    assert!(t.contains("LOOP on tailscale0"), "{t}");
    assert!(t.contains("Only: table 52\n"), "{t}");
    // A table by name: `main` is 254 here and in the events' table_name.
    let r = incident(&select(&["--table", "main"]));
    let t = body(&r);
    assert!(t.contains("removed 1 rule (5210)\n"), "{t}");
    assert!(!t.contains("LOOP"), "{t}");
    assert!(r.missing.is_empty());
}

#[test]
fn dst_filter_keeps_routes_that_overlap_and_rules_that_apply() {
    for dst in ["192.168.1.90", "192.168.1.0/24", "192.168.0.0/16"] {
        let r = incident(&select(&["--dst", dst]));
        let t = body(&r);
        assert!(
            t.contains("removed 4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24 table 52)"),
            "{dst}: {t}"
        );
        assert_eq!(r.missing.len(), 1, "{dst}");
        assert!(t.contains("LOOP"), "{dst}");
    }
    let r = incident(&select(&["--dst", "10.10.10.0/24"]));
    let t = body(&r);
    assert!(
        t.contains("removed 4 rules (5210, 5230, 5250, 5270)\n"),
        "{t}"
    );
    assert!(!t.contains("LOOP"), "{t}");
    assert!(r.missing.is_empty());
}

#[test]
fn comm_and_unit_filters_choose_episodes_but_restores_count_everyone() {
    // The kernel's 15-byte comm matches the full name too.
    for comm in ["systemd-network", "systemd-networkd"] {
        let r = incident(&select(&["--comm", comm]));
        let t = body(&r);
        assert!(
            t.contains("restored at 22:32:40 by tailscaled (pid 2783)"),
            "{t}"
        );
        assert!(!t.contains("22:32:40  tailscaled"), "{t}");
        assert!(t.contains("LOOP"), "{t}");
        assert_eq!(r.missing.len(), 1);
    }
    let r = incident(&select(&["--comm", "tailscaled"]));
    let t = body(&r);
    assert!(!t.contains("22:32:39  systemd-network"), "{t}");
    assert!(
        t.contains("puts back what systemd-network (pid 2772) removed"),
        "{t}"
    );
    assert!(!t.contains("LOOP"), "{t}");
    assert!(r.missing.is_empty());
    // No process of the lab runs in a unit.
    let r = incident(&select(&["--unit", "systemd-networkd"]));
    assert!(r.timeline.iter().all(|i| matches!(i, Item::Session(_))));
    assert!(body(&r).contains("Only: unit systemd-networkd.service\n"));
}

// --- synthetic journals ---

pub(super) fn proc(pid: u32, comm: &str, unit: Option<&str>) -> Value {
    json!({"pid": pid, "tid": pid, "comm": comm, "ppid": 1, "parent_comm": "systemd",
           "exe": null, "uid": 0, "cgroup": null, "unit": unit})
}

pub(super) fn rule(prio: u32, table: u32) -> Value {
    json!({"family": "inet", "priority": prio, "table": table, "table_name": null,
           "action": "table", "goto": null, "src": null, "dst": null, "fwmark": null,
           "fwmask": null, "iif": null, "oif": null, "uid_range": null, "ipproto": null,
           "sport": null, "dport": null, "tos": null, "suppress_prefixlen": null,
           "invert": false, "protocol": "boot"})
}

pub(super) fn route(dst: &str, table: u32) -> Value {
    json!({"family": "inet", "table": table, "table_name": null, "type": "unicast",
           "dst": dst, "gateway": "192.168.7.1", "dev": "veth0", "ifindex": 4,
           "metric": null, "protocol": "boot", "scope": "global"})
}

fn ns(name: &str, inode: u32) -> Value {
    json!({"inode": inode, "name": name})
}

/// A change event: `what` is `{"rule": ...}` or `{"route": ...}`.
pub(super) fn change(
    ts: &str,
    kind: &str,
    process: Value,
    what: (&str, Value),
    result: &str,
) -> Value {
    let mut v = json!({"ts": ts, "kind": kind, "source": "tracepoint", "process": process,
        "netns": ns("router", 7), "result": result, "cause": null, "nl_seq": 1});
    v[what.0] = what.1;
    v
}

fn entries(lines: &[Value]) -> Vec<Entry> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let at = Location {
                file: Arc::from("j.jsonl"),
                line: i + 1,
            };
            parse_line(at, l.to_string().as_bytes(), true)
                .unwrap()
                .unwrap()
        })
        .collect()
}

pub(super) fn synthetic(lines: &[Value], sel: &Select, problems: Vec<Problem>) -> Report {
    build(
        entries(lines),
        problems,
        &[PathBuf::from("j.jsonl")],
        Window::default(),
        sel,
        Duration::seconds(2),
    )
}

#[test]
fn bursts_split_on_the_gap_and_units_gather_their_processes() {
    let nd = |pid| proc(pid, "systemd-network", Some("systemd-networkd.service"));
    let r = synthetic(
        &[
            change(
                "2026-04-10T06:52:46.10Z",
                "rule_del",
                nd(812),
                ("rule", rule(5210, 52)),
                "ok",
            ),
            // Another process in between does not split the burst.
            change(
                "2026-04-10T06:52:46.50Z",
                "route_add",
                proc(90, "ip", None),
                ("route", route("10.9.0.0/16", 254)),
                "ok",
            ),
            // A restarted networkd: same unit, new pid, 1.9 s later.
            change(
                "2026-04-10T06:52:48.00Z",
                "rule_del",
                nd(815),
                ("rule", rule(5230, 52)),
                "ok",
            ),
            // 2.5 s later: a new episode.
            change(
                "2026-04-10T06:52:50.50Z",
                "rule_del",
                nd(815),
                ("rule", rule(5250, 52)),
                "ok",
            ),
        ],
        &Select::default(),
        vec![],
    );
    let t = body(&r);
    assert!(t.contains(
        "06:52:46  systemd-networkd.service (pids 812, 815, systemd-network) removed 2 rules (5210, 5230)\n"
    ), "{t}");
    assert!(t.contains("06:52:46  ip (pid 90) added 1 route (10.9.0.0/16 via 192.168.7.1 dev veth0 table 254)\n"), "{t}");
    assert!(
        t.contains(
            "06:52:50  systemd-networkd.service (pid 815, systemd-network) removed 1 rule (5250)\n"
        ),
        "{t}"
    );
    let eps = r
        .timeline
        .iter()
        .filter(|i| matches!(i, Item::Episode(_)))
        .count();
    assert_eq!(eps, 3);
    assert_eq!(r.missing.len(), 3);
}

#[test]
fn failed_requests_change_nothing() {
    let ip = || proc(90, "ip", None);
    let r = synthetic(
        &[
            change(
                "2026-04-10T06:52:46Z",
                "route_del",
                ip(),
                ("route", route("10.9.0.0/16", 254)),
                "ok",
            ),
            change(
                "2026-04-10T06:52:46.1Z",
                "route_add",
                ip(),
                ("route", route("10.9.0.0/16", 254)),
                "EEXIST",
            ),
            change(
                "2026-04-10T06:52:46.2Z",
                "rule_del",
                ip(),
                ("rule", rule(100, 100)),
                "ESRCH",
            ),
        ],
        &Select::default(),
        vec![],
    );
    let t = body(&r);
    assert!(t.contains(
        "06:52:46  ip (pid 90) removed 1 route (10.9.0.0/16 via 192.168.7.1 dev veth0 table 254); failed 2 requests\n\
         \x20         still missing: inet 10.9.0.0/16 via 192.168.7.1 dev veth0 table 254 proto boot\n\
         \x20         failed: route_add inet 10.9.0.0/16 via 192.168.7.1 dev veth0 table 254 proto boot: EEXIST\n\
         \x20         failed: rule_del rule inet pref 100 lookup 100: ESRCH\n"
    ), "{t}");
    assert_eq!(r.missing.len(), 1);
}

#[test]
fn a_later_snapshot_shows_what_came_back_unrecorded() {
    let ready = |ts: &str| {
        json!({"ts": ts, "kind": "ready", "source": "tracepoint", "hooks": {}, "functions": {},
               "kernel": "6.1", "version": "0.2.0", "pid": 10, "namespaces": [ns("router", 7)]})
    };
    let snap = |ts: &str, what: (&str, Value)| {
        let mut v =
            json!({"ts": ts, "kind": "snapshot", "source": "netlink", "netns": ns("router", 7)});
        v[what.0] = what.1;
        v
    };
    let r = synthetic(
        &[
            ready("2026-04-10T06:00:00Z"),
            snap("2026-04-10T06:00:00.1Z", ("rule", rule(5270, 52))),
            snap(
                "2026-04-10T06:00:00.2Z",
                ("route", route("192.168.1.0/24", 52)),
            ),
            json!({"ts": "2026-04-10T06:00:00.3Z", "kind": "snapshot_end", "source": "netlink",
                   "netns": ns("router", 7), "rules": 1, "routes": 1}),
            change(
                "2026-04-10T06:52:46Z",
                "rule_del",
                proc(812, "systemd-network", None),
                ("rule", rule(5270, 52)),
                "ok",
            ),
            change(
                "2026-04-10T06:52:46.1Z",
                "route_del",
                proc(812, "systemd-network", None),
                ("route", route("192.168.1.0/24", 52)),
                "ok",
            ),
            // The tracer was restarted the next day; the rule was back.
            ready("2026-04-11T06:00:00Z"),
            snap("2026-04-11T06:00:00.1Z", ("rule", rule(5270, 52))),
        ],
        &Select::default(),
        vec![],
    );
    let t = body(&r);
    assert_eq!(
        t,
        "\
Namespace: router
Times are UTC.

-- 2026-04-10 --
06:00:00  tracer started (pid 10, version 0.2.0), watching netns router
06:00:00  snapshot of netns router: 1 rule and 1 route
06:52:46  systemd-network (pid 812) removed 1 rule (5270) and 1 route (192.168.1.0/24 via 192.168.7.1 dev veth0 table 52)
          back in the snapshot at 2026-04-11 06:00:00 (put back while nothing was recording): 1 rule (5270)
          still missing: inet 192.168.1.0/24 via 192.168.7.1 dev veth0 table 52 proto boot
-- 2026-04-11 --
06:00:00  tracer started (pid 10, version 0.2.0), watching netns router
06:00:00  snapshot of netns router: 1 rule and 0 routes (incomplete)

Still missing at the end (2026-04-11 06:00:00):
  inet 192.168.1.0/24 via 192.168.7.1 dev veth0 table 52 proto boot, removed at 2026-04-10 06:52:46 by systemd-network (pid 812)
"
    );
    let Item::Episode(e) = &r.timeline[2] else {
        panic!()
    };
    assert_eq!(e.removed[0].fate.state, FateState::InSnapshot);
}

#[test]
fn kernel_removals_lost_records_namespaces_unknown_kinds_and_problems() {
    let mut gone = change(
        "2026-04-10T06:52:46Z",
        "route_del",
        Value::Null,
        ("route", route("10.20.0.0/16", 254)),
        "ok",
    );
    gone["cause"] = json!("link_down");
    let mut other_ns = change(
        "2026-04-10T06:52:47Z",
        "rule_add",
        proc(5, "ip\u{1b}[31m", None),
        ("rule", rule(7, 7)),
        "ok",
    );
    other_ns["netns"] = ns("lab", 9);
    let lines = [
        gone,
        json!({"ts": "2026-04-10T06:52:46.5Z", "kind": "lost", "source": "tracepoint", "count": 37, "location": "ring_buffer"}),
        other_ns,
        json!({"ts": "2026-04-10T06:52:48Z", "kind": "guard_action", "source": "tracer"}),
        json!({"ts": "2026-04-10T06:52:48Z", "kind": "mystery", "source": "tracer"}),
        json!({"ts": "2026-04-10T06:52:49Z", "kind": "mystery", "source": "tracer"}),
        json!({"ts": "2026-04-10T06:52:50Z", "kind": "journal_error", "source": "tracer", "path": "/j/x", "error": "disk full", "dropped": 0}),
    ];
    let problem = Problem {
        at: Location {
            file: Arc::from("j.jsonl"),
            line: 9,
        },
        message: "not JSON: expected value at line 1 column 1".into(),
    };
    let r = synthetic(&lines, &Select::default(), vec![problem]);
    assert_eq!(
        body(&r),
        "\
Times are UTC.

-- 2026-04-10 --
06:52:46  the kernel removed 1 route (10.20.0.0/16 via 192.168.7.1 dev veth0 table 254) (after link_down) in netns router
          still missing: inet 10.20.0.0/16 via 192.168.7.1 dev veth0 table 254 proto boot in netns router
06:52:46  LOST 37 records (ring_buffer): changes may be missing from this report
06:52:47  ip\\e[31m (pid 5) added 1 rule (7) in netns lab
06:52:50  the journal could not be written (disk full): events may be missing from here on

Still missing at the end (2026-04-10 06:52:50):
  inet 10.20.0.0/16 via 192.168.7.1 dev veth0 table 254 proto boot in netns router, removed at 2026-04-10 06:52:46 by the kernel
Not shown: 3 events of other kinds (guard_action 1, mystery 2).
Skipped 1 line:
  j.jsonl:9: not JSON: expected value at line 1 column 1
"
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["not_shown"], json!({"guard_action": 1, "mystery": 2}));
    assert_eq!(
        v["problems"],
        json!([{"file": "j.jsonl", "line": 9, "message": "not JSON: expected value at line 1 column 1"}])
    );
    assert_eq!(v["timeline"][0]["removed"][0]["cause"], "link_down");
    assert_eq!(
        v["timeline"][0]["actor"],
        json!({"unit": null, "comm": null, "pids": [], "exe": null})
    );
}

#[test]
fn bad_lines_in_a_journal_are_listed_and_the_report_goes_on() {
    let dir = std::env::temp_dir().join(format!("tracer-report-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(fixture("lab-incident.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines.pop().unwrap();
    let cut = &last[..100];
    lines.insert(3, "garbage");
    let f = dir.join("tracer-20261124T223238.000000Z.jsonl");
    std::fs::write(&f, format!("{}\n{cut}", lines.join("\n"))).unwrap();
    let files = crate::journal::read::journal_files(&dir).unwrap();
    let r = report_of(files, Window::default(), &Select::default());
    let t = body(&r);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        t.contains("systemd-network (pid 2772) removed 4 rules"),
        "{t}"
    );
    assert!(
        t.contains("25 packets looped by its last report in the window; no loop_end"),
        "{t}"
    );
    assert!(t.ends_with(&format!(
        "Skipped 2 lines:\n  {}:4: not JSON: expected value at line 1 column 1\n  {}:16: truncated last line (the file ends without a newline, in the middle of an event): EOF while parsing an object at line 1 column 100\n",
        f.display(),
        f.display()
    )), "{t}");
}

#[test]
fn a_loop_that_began_before_the_window_is_shown_from_its_summary() {
    let w = Window {
        since: Some(utc("2026-11-24T22:32:42Z")),
        until: Some(utc("2026-11-24T22:32:43.5Z")),
    };
    let r = report_of(vec![fixture("lab-incident.jsonl")], w, &Select::default());
    let t = body(&r);
    assert!(t.contains("22:32:42  LOOP on tailscale0"), "{t}");
    assert!(
        t.contains("packets looped by its last report in the window; no loop_end"),
        "{t}"
    );
}

#[test]
fn bad_filters_are_one_line_errors() {
    use clap::Parser as _;
    for (args, want) in [
        (
            vec!["--dst", "192.168.1.0/33"],
            "--dst \"192.168.1.0/33\" is not an address or a prefix",
        ),
        (
            vec!["--dst", "foo"],
            "--dst \"foo\" is not an address or a prefix",
        ),
        (vec!["--table", ""], "--table needs a table id or name"),
    ] {
        let cli = Cli::try_parse_from([&["tracer", "report"], &args[..]].concat()).unwrap();
        let Command::Report(a) = cli.command else {
            unreachable!()
        };
        let e = Select::from_args(&a, &TableNames::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn long_lists_are_cut_in_text_but_not_in_json() {
    let ip = || proc(90, "ip", None);
    let lines: Vec<Value> = (0..130)
        .map(|i| {
            let ts = format!("2026-04-10T06:52:46.{i:06}Z");
            let dst = format!("10.{i}.0.0/16");
            change(&ts, "route_del", ip(), ("route", route(&dst, 254)), "ok")
        })
        .collect();
    let r = synthetic(&lines, &Select::default(), vec![]);
    let t = body(&r);
    assert!(t.contains(
        "06:52:46  ip (pid 90) removed 130 routes (10.0.0.0/16 via 192.168.7.1 dev veth0 table 254, "
    ), "{t}");
    assert!(t.contains("table 254 and 122 more)\n"), "{t}");
    assert_eq!(t.matches("          still missing: inet").count(), 20);
    assert!(t.contains("          still missing: 110 more\n"), "{t}");
    assert!(
        t.ends_with("  and 30 more (--json lists them all)\n"),
        "{t}"
    );
    assert_eq!(r.missing.len(), 130);
}

#[test]
fn a_flapping_route_keeps_its_history_in_order() {
    // 20,000 removals and re-additions of one route: each removal is
    // restored by the next addition, and the report stays quick.
    let ip = || proc(90, "ip", None);
    let mut lines = Vec::new();
    for i in 0..20_000u32 {
        let ts = |half: u32| {
            let us = u64::from(i) * 10 + u64::from(half) * 5;
            format!(
                "2026-04-10T06:00:{:02}.{:06}Z",
                us / 1_000_000,
                us % 1_000_000
            )
        };
        lines.push(change(
            &ts(0),
            "route_del",
            ip(),
            ("route", route("10.9.0.0/16", 254)),
            "ok",
        ));
        lines.push(change(
            &ts(1),
            "route_add",
            ip(),
            ("route", route("10.9.0.0/16", 254)),
            "ok",
        ));
    }
    let start = std::time::Instant::now();
    let r = synthetic(&lines, &Select::default(), vec![]);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    let Item::Episode(e) = &r.timeline[0] else {
        panic!()
    };
    assert_eq!((e.removed.len(), e.added.len()), (20_000, 20_000));
    assert!(
        e.removed
            .iter()
            .all(|x| x.fate.state == FateState::Restored)
    );
    assert!(e.added.iter().all(|a| a.restores.is_some()));
    assert!(r.missing.is_empty());
}

#[test]
fn the_recorded_lab_starts_from_its_snapshot() {
    let dir = fixture("lab-recorded.journal");
    let files = crate::journal::read::journal_files(&dir).unwrap();
    let r = report_of(files, Window::default(), &Select::default());
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(r.not_shown.is_empty(), "{:?}", r.not_shown);
    assert_eq!(
        body(&r),
        "\
Namespace: rep-300-r
Times are UTC.

-- 2026-11-24 --
22:55:03  tracer started (pid 344, version 0.1.0), watching netns rep-300-r
22:55:03  snapshot of netns rep-300-r: 11 rules and 27 routes
22:55:04  systemd-network (pid 451) removed 4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24 table 52)
          restored at 22:55:05 by tailscaled (pid 484): 4 rules (5210, 5230, 5250, 5270)
          still missing: inet throw 192.168.1.0/24 table 52 proto boot
22:55:05  tailscaled (pid 484) added 4 rules (5210, 5230, 5250, 5270)
          puts back what systemd-network (pid 451) removed at 22:55:04: 4 rules (5210, 5230, 5250, 5270)
22:55:06  LOOP on tailscale0: 100.119.140.15 > 192.168.1.90 icmp comes back out of tailscale0 from 100.98.98.126 (rule 5270 -> table 52 -> default dev tailscale0)
          suspect: throw 192.168.1.0/24 table 52 removed at 22:55:04 by systemd-network (pid 451), still missing
          25 packets looped, until 22:55:08

Still missing at the end (2026-11-24 22:55:08):
  inet throw 192.168.1.0/24 table 52 proto boot, removed at 2026-11-24 22:55:04 by systemd-network (pid 451)
"
    );
    // With --table 52, the snapshot counts table 52 only: rule 5270 and
    // its four routes.
    let files = crate::journal::read::journal_files(&dir).unwrap();
    let r = report_of(files, Window::default(), &select(&["--table", "52"]));
    assert!(body(&r).contains("22:55:03  snapshot of netns rep-300-r: 1 rule and 4 routes\n"));
}
