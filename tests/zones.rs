//! One time convention for every command's text (issue 16): local time by
//! default, UTC with `--utc`; JSON is always UTC. Run with TZ=Asia/Tokyo
//! (UTC+09:00 all year), so local and UTC differ whatever the machine's
//! zone: `watch`'s lines, then `report`, `explain` and `state` over a
//! journal `record` wrote. Needs root (namespaces, eBPF).
mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use common::{Netns, TempDir, Tracer};

const TOKYO: (&str, &str) = ("TZ", "Asia/Tokyo");

/// `tracer watch` in text, its lines as they come.
fn watch_text(ns: &Netns, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(common::tracer_bin())
        .args(["watch", "--netns", &ns.name])
        .args(extra)
        .env(TOKYO.0, TOKYO.1)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tracer");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn next_line(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(_) => {}
            Err(_) => panic!("no {what} line within 30 s"),
        }
    }
}

/// The time a text line starts with (after `ready `), as written.
fn stamp(line: &str) -> &str {
    let rest = line.strip_prefix("ready ").unwrap_or(line);
    rest.split(' ').next().unwrap()
}

#[test]
fn watch_text_is_local_unless_utc_is_asked_for() {
    let ns = Netns::new("tz");
    for (extra, suffix) in [(&[][..], "+09:00"), (&["--utc"][..], "Z")] {
        let (mut child, rx) = watch_text(&ns, extra);
        let ready = next_line(&rx, "ready", |l| l.starts_with("ready "));
        let dst = if extra.is_empty() {
            "10.91.0.0/16"
        } else {
            "10.92.0.0/16"
        };
        ns.ip(&format!("route add blackhole {dst} table 91"));
        let change = next_line(&rx, "route_add", |l| l.contains(dst));
        let _ = child.kill();
        let _ = child.wait();
        for line in [&ready, &change] {
            let ts = stamp(line);
            assert!(ts.ends_with(suffix), "{extra:?}: {line}");
            chrono::DateTime::parse_from_rfc3339(ts)
                .unwrap_or_else(|e| panic!("{extra:?}: not RFC 3339 ({e}): {line}"));
        }
        assert!(change.contains(" route_add "), "{change}");
    }
}

fn tracer(args: &[&str]) -> String {
    let out = Command::new(common::tracer_bin())
        .args(args)
        .env(TOKYO.0, TOKYO.1)
        .output()
        .expect("run tracer");
    assert!(
        out.status.success(),
        "tracer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn report_explain_and_state_follow_the_same_convention() {
    let ns = Netns::new("tzj");
    let dir = TempDir::new("tz", "journal");
    ns.ip("link add d1 type veth peer name d1p");
    ns.ip("link set d1 up");
    ns.ip("link set d1p up");
    ns.ip("addr add 10.93.0.1/24 dev d1");
    let t = Tracer::start_cmd("record", &["--journal", dir.s(), "--netns", &ns.name]);
    ns.ip("route add 198.51.100.0/24 dev d1");
    // `record` shows no changes on stdout; stopping it writes out what it
    // saw, which the report below must contain.
    t.stop();
    let journal = ["--journal", dir.s()];
    let with = |cmd: &[&str], utc: bool| {
        let mut a: Vec<&str> = cmd.to_vec();
        a.extend(journal);
        if utc {
            a.push("--utc");
        }
        tracer(&a)
    };
    // report: its header names the zone.
    let local = with(&["report"], false);
    assert!(
        local.contains("198.51.100.0/24"),
        "the change is recorded: {local}"
    );
    assert!(local.contains("local time (UTC+09:00)"), "{local}");
    let utc = with(&["report"], true);
    assert!(!utc.contains("+09:00") && utc.contains("UTC"), "{utc}");
    // explain: the route's history.
    let ex = ["explain", "198.51.100.7", "--netns", &ns.name];
    let local = with(&ex, false);
    let added = |t: &str| {
        t.lines()
            .find(|l| l.contains("198.51.100.0/24") && l.contains("added "))
            .unwrap_or_else(|| panic!("no history line: {t}"))
            .to_string()
    };
    assert!(added(&local).contains(" UTC+09:00"), "{local}");
    let utc = with(&ex, true);
    assert!(
        added(&utc).contains(" UTC") && !utc.contains("+09:00"),
        "{utc}"
    );
    // explain --json: UTC whatever the flag.
    let mut json = ex.to_vec();
    json.push("--json");
    let j = with(&json, false);
    assert!(!j.contains("+09:00"), "{j}");
    // state: the moment it shows.
    let local = with(&["state", "--at", "now", "--netns", &ns.name], false);
    assert!(local.contains("+09:00"), "{local}");
    let utc = with(&["state", "--at", "now", "--netns", &ns.name], true);
    assert!(utc.contains(" UTC") && !utc.contains("+09:00"), "{utc}");
}
