//! The request-form test: every rule and route request of the corpus
//! (tests/forms/*.forms: real bytes of iproute2, systemd-networkd, libnl, Go
//! netlink and raw senders) is made in a fresh namespace under the real
//! `tracer watch --json`, and must be reported exactly once, in order, by
//! its process, within 100 ms, with the case's fields. See
//! tests/forms/README.md.
mod common;
#[path = "common/forms.rs"]
mod forms;

use std::{
    process::Command,
    time::{Duration, Instant, SystemTime},
};

use common::{Netns, Tracer, nlraw_bin};
use forms::{Case, Sent, check_case, check_log, load, parse_log};
use serde_json::Value;

/// How long to wait for a case's events before going on to the next case.
const WAIT: Duration = Duration::from_secs(1);

fn run_sh(ns: &str, args: &[&str]) -> std::process::Output {
    let script = forms::dir().join("run.sh");
    Command::new("sh")
        .arg(script)
        .args([ns, nlraw_bin().to_str().unwrap(), "ip"])
        .args(args)
        .output()
        .expect("run tests/forms/run.sh")
}

fn changes(t: &Tracer) -> Vec<Value> {
    t.events()
        .into_iter()
        .filter(|e| e["kind"] != "ready")
        .collect()
}

/// Run every case of `files` in one fresh namespace, through `ip` itself
/// (`by_ip`) or replayed by nlraw, and fail with every case that failed.
fn pass(files: &[&str], by_ip: bool) {
    let cases: Vec<Case> = load(files)
        .into_iter()
        .filter(|c| !by_ip || c.by_ip())
        .collect();
    assert!(!cases.is_empty(), "no cases in {files:?}");
    let ns = Netns::new(if by_ip { "fip" } else { "frp" });
    let out = run_sh(&ns.name, &["pre"]);
    assert!(
        out.status.success(),
        "run.sh pre failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Tracer::start(&["--netns", &ns.name]);
    let mut windows = Vec::new();
    let mut log = String::new();
    for c in &cases {
        let first = changes(&t).len();
        let start = SystemTime::now();
        let out = run_sh(&ns.name, &[if by_ip { "ip" } else { "replay" }, &c.name]);
        if !by_ip {
            assert!(
                out.status.success(),
                "{}: replay failed: {}",
                c.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let sent: Sent = parse_log(&text).pop().unwrap_or_default();
        log.push_str(&text);
        let waited = Instant::now();
        while changes(&t).len() < first + c.expects.len() && waited.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        windows.push((first, start, sent));
    }
    let seen = changes(&t);
    let arrivals: Vec<Option<SystemTime>> = seen.iter().map(|e| t.arrival(|x| x == e)).collect();
    let all: Vec<Value> = t
        .stop()
        .into_iter()
        .filter(|e| e["kind"] != "ready")
        .collect();
    let comm = if by_ip { "ip" } else { "nlraw" };
    let mut failed = Vec::new();
    // The same run as the QEMU tests check it, with the events' own times
    // instead of when they were read: cases that only fail that way.
    let by_ts = if by_ip {
        Vec::new()
    } else {
        check_log(&cases, &log, &all, comm, &ns.name)
    };
    let names: Vec<&str> = by_ts.iter().map(|f| f.0.as_str()).collect();
    eprintln!("failing by the events' own ts (as the QEMU tests check): {names:?}");
    for (k, c) in cases.iter().enumerate() {
        let (first, start, sent) = &windows[k];
        let end = windows.get(k + 1).map(|w| w.0).unwrap_or(all.len());
        let got: Vec<(Value, Option<SystemTime>)> = (*first..end)
            .map(|i| (all[i].clone(), arrivals.get(i).copied().flatten()))
            .collect();
        let mut bad = check_case(c, comm, &ns.name, sent, *start, &got, forms::MAX_DELAY);
        if let (true, Some((_, b))) = (bad.is_empty(), by_ts.iter().find(|f| f.0 == c.name)) {
            bad.push(format!(
                "by the events' own ts (as in QEMU): {}",
                b.join("; ")
            ));
        }
        if bad.is_empty() {
            eprintln!("PASS {}", c.name);
        } else {
            eprintln!("FAIL {}: {}", c.name, bad[0]);
            failed.push(format!(
                "{} ({}, {}.forms):\n    {}",
                c.name,
                c.client,
                c.file,
                bad.join("\n    ")
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} request forms of {files:?} ({}) failed:\n{}",
        failed.len(),
        cases.len(),
        if by_ip {
            "run by ip"
        } else {
            "replayed by nlraw"
        },
        failed.join("\n")
    );
}

#[test]
fn iproute2_forms_run_by_ip() {
    pass(&["iproute2-rule", "iproute2-route"], true);
}

#[test]
fn iproute2_forms_replayed() {
    pass(&["iproute2-rule", "iproute2-route"], false);
}

#[test]
fn go_netlink_forms_replayed() {
    pass(&["go"], false);
}

#[test]
fn libnl_forms_replayed() {
    pass(&["libnl"], false);
}

#[test]
fn raw_forms_replayed() {
    pass(&["raw"], false);
}

#[test]
fn systemd_networkd_forms_replayed() {
    pass(&["networkd"], false);
}
