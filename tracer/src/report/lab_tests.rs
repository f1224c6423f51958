//! The report of the lab's real recordings (tests/fixtures): line by line,
//! as JSON, with filters and windows, and with bad lines.
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{
    build,
    model::{Item, Report},
    select::Select,
    text::{Zone, render},
};
use crate::{
    cli::{Cli, Command, ReportArgs},
    journal::read::Reader,
    netlink::names::TableNames,
    when::Window,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The filters of a `tracer report` command line.
pub(super) fn select(args: &[&str]) -> Select {
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

pub(super) fn incident(sel: &Select) -> Report {
    report_of(vec![fixture("lab-incident.jsonl")], Window::default(), sel)
}

/// The report's text without its first line (which names the file by its
/// absolute path).
pub(super) fn body(r: &Report) -> String {
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
