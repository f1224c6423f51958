//! The incident asked about after the fact, as issue 13 tells it: the lab
//! recorded by `tracer record`, then its namespaces deleted (the router,
//! its tailscale0 and everything gone), and `tracer explain --at` asked by
//! an unprivileged user with a copy of the journal, before the flush
//! (throw 192.168.1.0/24 sends the walk on to main: no loop) and after it
//! (rule 5270, table 52, `default dev tailscale0`: a loop, and the removal
//! named with its process). Also the misleading "wrong guessed source":
//! with `--iif` and no `--from`, the source is an address behind that
//! interface, and a lookup the kernel refuses is said to be refused, with
//! the walk and the history still shown. Needs root (namespaces, eBPF).
mod common;

use std::{
    process::{Command, Output},
    time::Duration,
};

use common::{
    Netns, Tracer,
    lab::{BROKEN_ID, LAN_HOST, Lab},
};

use common::TempDir as Dir;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `tracer ARGS` as nobody (uid 65534): it must succeed; its stdout.
fn as_nobody(args: &[&str]) -> String {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::tracer_bin())
        .args(args)
        .output()
        .expect("setpriv (util-linux)");
    ok(args, out)
}

fn ok(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "tracer {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tracer(args: &[&str]) -> Output {
    Command::new(common::tracer_bin())
        .args(args)
        .output()
        .expect("run tracer")
}

fn has_line(text: &str, want: &str) {
    assert!(
        text.lines().any(|l| l == want),
        "no line {want:?} in:\n{text}"
    );
}

/// Record the lab broken; returns the router's name and the moments
/// before the flush and after the loop. The lab is gone on return.
fn record_then_delete(dir: &Dir) -> (String, String, String) {
    let lab = Lab::up();
    let t = Tracer::start_cmd(
        "record",
        &[
            "--journal",
            dir.s(),
            "--netns",
            &lab.router,
            "--iface",
            &lab.iface("tailscale0"),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = now();
    std::thread::sleep(Duration::from_millis(300));
    lab.break_it();
    lab.ping(&BROKEN_ID.to_string(), 3).assert_looped(3);
    t.wait_for("the loop", Duration::from_secs(10), |e| e["kind"] == "loop");
    std::thread::sleep(Duration::from_millis(300));
    let after = now();
    t.stop();
    let router = lab.router.clone();
    drop(lab);
    assert!(
        !std::path::Path::new("/run/netns").join(&router).exists(),
        "the lab's namespaces are gone"
    );
    let _ = Command::new("chmod").args(["-R", "a+rX", dir.s()]).status();
    (router, before, after)
}

#[test]
fn the_incident_is_explained_from_the_journal_after_the_router_is_gone() {
    let dir = Dir::new("after", "gone");
    let (router, before, after) = record_then_delete(&dir);
    let ask = |at: &str| {
        as_nobody(&[
            "explain",
            LAN_HOST,
            "--iif",
            "tailscale0",
            "--netns",
            &router,
            "--journal",
            dir.s(),
            "--at",
            at,
        ])
    };
    let text = ask(&before);
    has_line(
        &text,
        "  rule 5270   lookup 52                                    no route here (throw 192.168.1.0/24: back to the rules), next rule",
    );
    has_line(
        &text,
        "  rule 32766  lookup 254(main)                             MATCHED",
    );
    has_line(&text, "  table 254 (main): 192.168.1.0/24 dev enp1s0");
    assert!(
        !text.contains("loop") && !text.contains("not known"),
        "{text}"
    );

    let text = ask(&after);
    has_line(
        &text,
        "  rule 5270   lookup 52                                    MATCHED",
    );
    has_line(&text, "  table 52: default dev tailscale0");
    has_line(
        &text,
        "  -> out of tailscale0, the interface it came in on: a forwarding loop",
    );
    let answer = text.lines().last().unwrap();
    assert!(
        answer.starts_with("Answer: `throw 192.168.1.0/24` existed in table 52 until ")
            && answer.contains(" and was removed by systemd-network (pid ")
            && answer.ends_with("so 192.168.1.90 then matched `default dev tailscale0`."),
        "{text}"
    );

    // Without --at: the namespace is gone, so the journal answers.
    let text = as_nobody(&[
        "explain",
        LAN_HOST,
        "--iif",
        "tailscale0",
        "--netns",
        &router,
        "--journal",
        dir.s(),
    ]);
    assert!(
        text.starts_with(&format!(
            "The live kernel cannot answer (--netns {router}: "
        )),
        "{text}"
    );
    has_line(&text, "  table 52: default dev tailscale0");

    // And the state as it was, with who changed it.
    let text = as_nobody(&[
        "state",
        "--journal",
        dir.s(),
        "--netns",
        &router,
        "--at",
        &before,
        "--diff",
        &after,
        "--table",
        "52",
    ]);
    let l: Vec<&str> = text.lines().collect();
    let i = l
        .iter()
        .position(|x| *x == "- throw 192.168.1.0/24 table 52")
        .unwrap_or_else(|| panic!("no removal of the throw route in:\n{text}"));
    assert!(l[i + 1].contains(" by systemd-network (pid "), "{text}");
}

/// A router with d1 (10.1.0.1/24, where table 100's default route goes),
/// d3 (203.0.114.1/24) and d4 (no address), rule 100 to table 100, set up
/// while `tracer record` runs.
fn router_with_d3(ns: &Netns, dir: &Dir) {
    for d in ["d1", "d3", "d4"] {
        ns.ip(&format!("link add {d} type veth peer name {d}p"));
        ns.ip(&format!("link set {d} up"));
        ns.ip(&format!("link set {d}p up"));
    }
    ns.ip("addr add 10.1.0.1/24 dev d1");
    ns.ip("addr add 203.0.114.1/24 dev d3");
    common::run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
        ],
    );
    let t = Tracer::start_cmd("record", &["--journal", dir.s(), "--netns", &ns.name]);
    ns.ip("rule add pref 100 lookup 100");
    ns.ip("route add default dev d1 table 100");
    std::thread::sleep(Duration::from_millis(500));
    t.stop();
}

#[test]
fn no_false_walk_from_a_guessed_source() {
    let ns = Netns::new("d3");
    let dir = Dir::new("after", "d3");
    router_with_d3(&ns, &dir);
    let base = [
        "explain",
        "198.51.100.7",
        "--netns",
        &ns.name,
        "--journal",
        dir.s(),
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    // No --from: an address of d3's own subnet, never the router's own.
    let a = with(&["--iif", "d3"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let text = ok(&a, tracer(&a));
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(
        l[0],
        format!(
            "How 198.51.100.7 is routed now in netns {}, for a packet from 203.0.114.2 (assumed: an address in d3's connected subnet 203.0.114.0/24; give --from) arriving on d3:",
            ns.name
        )
    );
    has_line(
        &text,
        "  rule 100    lookup 100                                   MATCHED",
    );
    has_line(&text, "  table 100: default dev d1");
    has_line(&text, "  -> out of d1");
    assert!(
        text.contains("  default dev d1                   present  added "),
        "{text}"
    );

    // The router's own address (on d1) as the source: the kernel refuses
    // it; the walk and the history are still shown.
    let a = with(&["--iif", "d3", "--from", "10.1.0.1"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let text = ok(&a, tracer(&a));
    has_line(
        &text,
        "  rule 100    lookup 100                                   MATCHED",
    );
    has_line(
        &text,
        "  the kernel refused the lookup: Invalid argument (os error 22)",
    );
    has_line(
        &text,
        "  (10.1.0.1 is one of this host's own addresses: the kernel refuses it as the source of a packet arriving on d3; give --from a host behind it)",
    );
    has_line(&text, "  the walk on the rules and routes above ends at:");
    has_line(&text, "  table 100: default dev d1");
    assert!(
        text.contains("\nRoutes in table 100 covering 198.51.100.7 (journal "),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.contains("lookup 100") && l.contains("no route here")),
        "table 100 not said to have no route:\n{text}"
    );

    // Nothing known behind d4: ask for --from rather than guess.
    let a = with(&["--iif", "d4"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = tracer(&a);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap().trim(),
        "tracer: --iif d4: no address is known to lie behind d4 (no connected subnet or route through it); give --from SRC"
    );
}
