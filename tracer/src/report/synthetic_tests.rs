//! The report of synthetic journals: what the lab's recordings do not
//! show (units, gaps, failures, snapshots across sessions, the kernel, lost
//! records, long lists, flapping routes). The helpers build events as the
//! tracer writes them.
use std::{path::PathBuf, sync::Arc};

use chrono::Duration;
use serde_json::{Value, json};

use super::{
    build,
    lab_tests::body,
    model::{FateState, Item, Report},
    select::Select,
};
use crate::{
    journal::read::{Entry, Location, Problem, parse_line},
    when::Window,
};

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
        not_a_journal: false,
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
