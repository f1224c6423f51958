//! `watch --iface --packet-programs on-demand` (tcx): the packet programs
//! leave a quiet interface, come back with a change in its namespace, and
//! sample it otherwise, and the lab's loop is reported either way. The
//! programs' presence is read from the kernel (`bpftool net show`), not
//! from the tracer.
mod common;

use std::time::{Duration, Instant};

use common::{
    Tracer, doctor,
    lab::{self, BROKEN_ID, Lab, V4},
};
use serde_json::Value;

const LOOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the kernel has tcx (Linux 6.6+); on-demand arming is tcx only.
fn tcx() -> bool {
    let tcx = doctor()["features"]["tcx"]["available"] == true;
    if !tcx {
        eprintln!(
            "skipped: this kernel has no tcx links (Linux < 6.6), and only tcx programs are attached on demand"
        );
    }
    tcx
}

/// The tracer's tcx programs on tailscale0 in the lab's router namespace,
/// as the kernel lists them.
fn attached(lab: &Lab) -> Vec<String> {
    let shown = common::run(
        "ip",
        &[
            "netns",
            "exec",
            &lab.router,
            "bpftool",
            "-j",
            "net",
            "show",
            "dev",
            "tailscale0",
        ],
    );
    let v: Value = serde_json::from_str(&shown)
        .unwrap_or_else(|e| panic!("bpftool -j net show: {e}: {shown}"));
    let mut names = Vec::new();
    for section in v.as_array().into_iter().flatten() {
        for list in ["tc", "tcx"] {
            for p in section[list].as_array().into_iter().flatten() {
                if let Some(n) = p["name"].as_str().or_else(|| p["prog_name"].as_str()) {
                    names.push(n.to_string());
                }
            }
        }
    }
    names.retain(|n| n.starts_with("pkt_"));
    names
}

/// Waits until the programs have been detached (`--armed-for` is over), in
/// the 90% of each second outside a sampling window.
fn wait_disarmed(lab: &Lab) {
    let start = Instant::now();
    loop {
        let now = attached(lab);
        if now.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the tc programs are still attached 10 s after start-up with --armed-for 1s: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn start(lab: &Lab) -> Tracer {
    let iface = lab.iface("tailscale0");
    let t = Tracer::start(&[
        "--netns",
        &lab.router,
        "--iface",
        &iface,
        "--packet-programs",
        "on-demand",
        "--armed-for",
        "1s",
    ]);
    assert_eq!(
        t.ready["ifaces"],
        serde_json::json!([{"iface": iface, "via": "tc", "hook": "tcx", "programs": "on_demand"}]),
        "ready: {}",
        t.ready
    );
    t
}

fn loops(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["kind"] == "loop").collect()
}

/// Attached at start-up, detached once --armed-for is over, attached again
/// by the flush that breaks the lab: its loop is reported as with the
/// programs always attached, naming the removal, within 1 s.
#[test]
fn a_change_arms_the_programs_and_its_loop_is_reported() {
    if !tcx() {
        return;
    }
    let lab = Lab::up();
    let t = start(&lab);
    assert_eq!(
        attached(&lab).len(),
        2,
        "both programs attached at start-up"
    );
    wait_disarmed(&lab);
    lab.break_it();
    let peer = lab.ping(&BROKEN_ID.to_string(), 3);
    peer.assert_looped(3);
    t.wait_for("the loop", LOOP_TIMEOUT, |e| e["kind"] == "loop");
    let reported = t.arrival(|e| e["kind"] == "loop").expect("loop line read");
    let events = t.stop();
    let found = loops(&events);
    assert_eq!(found.len(), 1, "one loop event: {found:?}");
    lab::check_loop_of(V4, found[0], &lab.router, &peer.stdout, "tcx", false);
    let first_seen: chrono::DateTime<chrono::Utc> =
        found[0]["first_seen"].as_str().unwrap().parse().unwrap();
    let latency = chrono::DateTime::<chrono::Utc>::from(reported) - first_seen;
    assert!(
        latency < chrono::TimeDelta::seconds(1),
        "loop reported {latency} after its first looped packet; {}",
        found[0]
    );
    assert!(
        attached(&lab).is_empty(),
        "no program left after the tracer stopped"
    );
}

/// A loop that was there before the tracer started (no change behind it):
/// with the programs detached, the sampling windows (100 ms in every
/// second) find it while the peer pings every 100 ms.
#[test]
fn a_loop_with_no_change_behind_it_is_found_by_sampling() {
    if !tcx() {
        return;
    }
    let lab = Lab::up();
    lab.break_it();
    let t = start(&lab);
    wait_disarmed(&lab);
    let started = chrono::Utc::now();
    let peer = lab.ping(&BROKEN_ID.to_string(), 25);
    peer.assert_looped(25);
    t.wait_for("the loop", LOOP_TIMEOUT, |e| e["kind"] == "loop");
    let events = t.stop();
    let found = loops(&events);
    assert_eq!(found.len(), 1, "one loop event for the flow: {found:?}");
    let e = found[0];
    assert_eq!(e["iface"], "tailscale0", "{e}");
    assert_eq!(e["original"]["icmp_id"], BROKEN_ID, "{e}");
    assert_eq!(e["original"]["dst"], lab::LAN_HOST, "{e}");
    assert_eq!(e["looped"]["dst"], lab::LAN_HOST, "{e}");
    assert_eq!(e["snat"], true, "{e}");
    let first_seen: chrono::DateTime<chrono::Utc> =
        e["first_seen"].as_str().unwrap().parse().unwrap();
    // A window opens every second: the first looped packet seen is one of
    // the first 1.2 s of pings (the windows' ticks may run late).
    let after = first_seen - started;
    assert!(
        after < chrono::TimeDelta::milliseconds(1_200),
        "the loop's first packet seen {after} after the pings started; {e}"
    );
}
