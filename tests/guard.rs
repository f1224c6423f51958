//! `tracer guard` on this kernel, each test in its own namespace: a removed
//! expected route is one violation (naming the removal) that runs the
//! configured command once, and is counted in the metrics; a route put back
//! within the grace period is none; bad expectations are a clear error
//! before anything is attached.
mod common;

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use common::{Netns, Tracer};

const THROW: &str = "throw 192.168.1.0/24 table 52";

fn router(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip("link add v0 type veth peer name v1");
    ns.ip("link set v0 up");
    ns.ip("route add default dev v0 table 52");
    ns.ip("route add throw 192.168.1.0/24 table 52");
    ns.ip("rule add pref 5270 lookup 52");
    ns
}

fn kinds(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// A file the --on-violation command appends to, removed on drop.
struct Out(PathBuf);

impl Drop for Out {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to --metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn a_removed_route_is_one_violation_that_runs_the_command_once() {
    let ns = router("viol");
    let out = Out(std::env::temp_dir().join(format!("tracer-it-guard-{}", std::process::id())));
    let cmd = format!("cat >> {}; echo handled", out.0.display());
    // A free port for --metrics.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--netns",
            &ns.name,
            "--expect",
            THROW,
            "--expect",
            "rule 5270 table 52",
            "--grace",
            "1s",
            "--on-violation",
            &cmd,
            "--metrics",
            &port.to_string(),
        ],
    );
    ns.ip("route del throw 192.168.1.0/24 table 52");
    let removed = Instant::now();
    t.wait_for("guard_action", Duration::from_secs(10), |e| {
        e["kind"] == "guard_action"
    });
    let events = t.events();
    let v = events
        .iter()
        .find(|e| e["kind"] == "guard_violation")
        .expect("guard_violation");
    // Within 1 s of the grace period's end.
    let seen = t.arrival(|e| e["kind"] == "guard_violation").unwrap();
    let after = seen
        .duration_since(std::time::SystemTime::now() - removed.elapsed())
        .unwrap_or_default();
    assert!(
        after < Duration::from_secs(2),
        "violation {after:?} after the removal, with a 1 s grace"
    );
    assert_eq!(v["expectation"], THROW);
    assert_eq!(v["netns"]["name"], ns.name.as_str());
    assert_eq!(v["grace_secs"], 1.0);
    assert_eq!(v["change"]["kind"], "route_del");
    assert_eq!(v["change"]["route"]["type"], "throw");
    assert_eq!(v["change"]["route"]["dst"], "192.168.1.0/24");
    assert_eq!(v["change"]["process"]["comm"], "ip");
    assert_eq!(v["since"], v["change"]["ts"]);
    let a = events.iter().find(|e| e["kind"] == "guard_action").unwrap();
    assert_eq!(a["expectation"], THROW);
    assert_eq!(a["exit_code"], 0);
    assert_eq!(a["stdout"], "handled\n");
    assert_eq!(a["suppressed"], 0);
    // The command got the violation as JSON on stdin, once.
    let got = std::fs::read_to_string(&out.0).unwrap();
    assert_eq!(got.lines().count(), 1, "{got}");
    let json: serde_json::Value = serde_json::from_str(got.trim()).unwrap();
    assert_eq!(&json, v);
    let m = metrics(port);
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.contains(&format!(
            "tracer_guard_violations_total{{expectation=\"{THROW}\"}} 1"
        )),
        "{m}"
    );
    // Put back: restored, and nothing else.
    ns.ip("route add throw 192.168.1.0/24 table 52");
    t.wait_for("guard_restored", Duration::from_secs(10), |e| {
        e["kind"] == "guard_restored"
    });
    let events = t.stop();
    assert_eq!(
        kinds(&events),
        ["ready", "guard_violation", "guard_action", "guard_restored"]
    );
    assert_eq!(std::fs::read_to_string(&out.0).unwrap().lines().count(), 1);
}

#[test]
fn restored_within_the_grace_period_is_no_violation() {
    let ns = router("grace");
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--netns",
            &ns.name,
            "--expect-current",
            "--table",
            "52",
            "--grace",
            "3s",
            "--on-violation",
            "echo should-not-run",
        ],
    );
    // networkd flushes, tailscaled restores at once.
    ns.ip("rule del pref 5270");
    ns.ip("route del throw 192.168.1.0/24 table 52");
    ns.ip("rule add pref 5270 lookup 52");
    ns.ip("route add throw 192.168.1.0/24 table 52");
    // Past the grace period.
    std::thread::sleep(Duration::from_secs(4));
    let events = t.stop();
    assert_eq!(kinds(&events), ["ready"]);
}

#[test]
fn missing_at_start_is_reported_at_once() {
    let ns = router("start");
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--netns",
            &ns.name,
            "--expect",
            "throw 10.10.10.0/24 table 52",
            "--grace",
            "1h",
        ],
    );
    t.wait_for("guard_violation", Duration::from_secs(5), |e| {
        e["kind"] == "guard_violation"
    });
    let events = t.stop();
    assert_eq!(kinds(&events), ["ready", "guard_violation"]);
    assert_eq!(events[1]["expectation"], "throw 10.10.10.0/24 table 52");
    assert!(events[1]["change"].is_null());
}

#[test]
fn bad_expectations_are_one_clear_line() {
    let run = |args: &[&str]| {
        let out = Command::new(common::tracer_bin())
            .arg("guard")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    };
    let e = run(&["--expect", "throw 192.168.1.5/24 table 52"]);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("tracer: --expect: cannot parse expectation"),
        "{e}"
    );
    assert!(e.contains("host bits"), "{e}");
    let e = run(&["--expect", "rule five table 52"]);
    assert!(e.contains("priority \"five\" is not a number"), "{e}");
    let e = run(&[]);
    assert!(e.contains("nothing to guard"), "{e}");
    let e = run(&["--expect-file", "/nonexistent/expectations"]);
    assert!(e.contains("cannot read --expect-file"), "{e}");
    let e = run(&["--expect", THROW, "--grace", "soon"]);
    assert!(e.contains("--grace"), "{e}");
}
