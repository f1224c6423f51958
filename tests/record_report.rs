//! `tracer record`, then `tracer report`, on this kernel: the answers
//! issue 13 found misleading, reproduced. A second recorder on one journal
//! directory is refused, naming the first one's pid (two would write every
//! change twice). After `ip link del d2`, the report says d2's connected
//! and local routes left with d2 (named, not `dev #N`), not that they are
//! still missing, and a new interface's `fe80::/64` restores none of them.
mod common;

use std::{process::Command, time::Duration};

use common::{Netns, Tracer};

use common::TempDir as Dir;

#[test]
fn a_second_recorder_on_the_same_journal_is_refused_naming_the_first() {
    let ns = Netns::new("lock");
    let dir = Dir::created("rr", "lock");
    let first = Tracer::start_cmd("record", &["--journal", dir.s(), "--netns", &ns.name]);
    let out = Command::new(common::tracer_bin())
        .args(["record", "--journal", dir.s(), "--netns", &ns.name])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "tracer: --journal {} is already being recorded by another tracer (pid {}); one recorder per journal directory\n",
            dir.s(),
            first.pid()
        )
    );
    // Only the first recorder's file.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    first.stop();
    // Once it has stopped (or died), the directory is free again.
    let again = Tracer::start_cmd("record", &["--journal", dir.s(), "--netns", &ns.name]);
    again.kill9();
    let third = Tracer::start_cmd("record", &["--journal", dir.s(), "--netns", &ns.name]);
    third.stop();
}

/// A veth pair in `ns` with an IPv4 address on its first end.
fn pair(ns: &Netns, a: &str, b: &str, addr: Option<&str>) {
    ns.ip(&format!("link add {a} type veth peer name {b}"));
    ns.ip(&format!("link set {a} up"));
    ns.ip(&format!("link set {b} up"));
    if let Some(addr) = addr {
        ns.ip(&format!("addr add {addr} dev {a}"));
    }
}

fn report(args: &[&str]) -> String {
    let out = Command::new(common::tracer_bin())
        .arg("report")
        .args(args)
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success() && e.is_empty(), "{o}{e}");
    o
}

#[test]
fn routes_of_a_deleted_interface_are_reported_gone_with_it() {
    let ns = Netns::new("linkdel");
    let dir = Dir::created("rr", "linkdel");
    let t = Tracer::start_cmd("record", &["--journal", dir.s(), "--netns", &ns.name]);
    pair(&ns, "d1", "p1", Some("10.1.0.1/24"));
    pair(&ns, "d2", "p2", Some("10.2.0.1/24"));
    // IPv6 link-local prefix routes come with the links.
    std::thread::sleep(Duration::from_millis(1500));
    ns.ip("link del d2");
    std::thread::sleep(Duration::from_millis(500));
    pair(&ns, "d3", "p3", None);
    std::thread::sleep(Duration::from_millis(1500));
    t.stop();
    let out = report(&["--utc", "--journal", dir.s()]);
    // (5 or 6 routes: `local fe80::.../128 dev d2` too once DAD is done.)
    assert!(out.contains("gone with interface d2 (deleted): "), "{out}");
    for route in [
        "10.2.0.0/24 dev d2 table main",
        "broadcast 10.2.0.255/32 dev d2 table local",
        "local 10.2.0.1/32 dev d2 table local",
        "fe80::/64 dev d2 table main",
    ] {
        let line = out
            .lines()
            .find(|l| l.contains("gone with interface d2"))
            .unwrap();
        assert!(line.contains(route), "{route}: {line}");
    }
    assert!(out.contains("gone with interface p2 (deleted): "), "{out}");
    for wrong in [
        "dev #",
        "still missing",
        "Still missing",
        "restored",
        "puts back",
    ] {
        assert!(!out.contains(wrong), "{wrong:?} in:\n{out}");
    }
    // d3's fe80::/64 is an addition of its own.
    assert!(out.contains("fe80::/64 dev d3 table main"), "{out}");
}
