//! The subnet-router lab (tests/lab/lab.sh, the incident of 2026-04-10 in
//! two network namespaces) under `tracer watch --iface`: the routing loop
//! that a lost `throw 192.168.1.0/24` causes is reported once per flow, with
//! the route lookup that sent it back and the change that caused it; a
//! healthy router and an interface that carries none of the traffic report
//! nothing. The tailnet peer is tests/bin/tailnet_peer.rs, writing into the
//! router's TUN device tailscale0.
mod common;

use std::time::{Duration, Instant};

use common::{
    Tracer, doctor,
    lab::{BROKEN_ID, HEALTHY_ID, LAN_HOST, Lab, PEER, ROUTER_TAILNET_ADDR},
};
use serde_json::Value;

/// How long a reported loop may take to appear after the peer saw it.
const LOOP_TIMEOUT: Duration = Duration::from_secs(10);
/// After traffic that must not be reported, how long the tracer is given
/// to (wrongly) report it before it is stopped (which also flushes it). A
/// loop is reported well within this in the broken lab.
const QUIET_WINDOW: Duration = Duration::from_secs(2);

fn is_loop_kind(e: &Value) -> bool {
    e["kind"].as_str().is_some_and(|k| k.starts_with("loop"))
}

/// Waits `window` for a loop report that must not come, then stops the
/// tracer and returns every event.
fn stop_after_quiet_window(t: Tracer) -> Vec<Value> {
    let start = Instant::now();
    while start.elapsed() < QUIET_WINDOW {
        if t.events().iter().any(is_loop_kind) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    t.stop()
}

fn lines(events: &[Value]) -> String {
    events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn broken_lab_reports_one_loop_per_flow() {
    broken_lab(&[], default_via());
}

/// How the tracer watches an interface by default: with its tc programs
/// where doctor says the kernel has tcx links.
fn default_via() -> &'static str {
    if doctor()["features"]["tcx"]["available"] == true {
        "tc"
    } else {
        "tracepoint"
    }
}

/// The same with the packet programs' fallbacks, which this kernel would
/// not otherwise use: tracepoints instead of tc programs, as BTF-enabled,
/// raw and classic tracepoints (each must pass the verifier and pair the
/// same packets).
#[test]
fn broken_lab_on_btf_tracepoints() {
    broken_lab(&[("TRACER_PACKET_HOOK", "btf")], "tracepoint");
}

#[test]
fn broken_lab_on_raw_tracepoints() {
    broken_lab(&[("TRACER_PACKET_HOOK", "raw")], "tracepoint");
}

#[test]
fn broken_lab_on_classic_tracepoints() {
    broken_lab(&[("TRACER_PACKET_HOOK", "classic")], "tracepoint");
}

/// Classic tc (a clsact qdisc and direct-action filters), the tc rung of
/// kernels without tcx (before 6.6), forced here with
/// `TRACER_PACKET_HOOK=clsact`: the filters are there while the tracer
/// runs, and gone once it has stopped.
#[test]
fn broken_lab_on_classic_tc() {
    let lab = broken_lab(&[("TRACER_PACKET_HOOK", "clsact")], "tc");
    for dir in ["ingress", "egress"] {
        let shown = tc_filters(&lab, dir);
        assert!(
            !shown.contains("pkt_"),
            "the tracer's {dir} filter outlived it on tailscale0:\n{shown}"
        );
    }
}

/// `tc filter show dev tailscale0 DIR` in the lab's router namespace.
fn tc_filters(lab: &Lab, dir: &str) -> String {
    common::run(
        "ip",
        &[
            "netns",
            "exec",
            &lab.router,
            "tc",
            "filter",
            "show",
            "dev",
            "tailscale0",
            dir,
        ],
    )
}

/// The broken lab under `tracer watch --iface`, with `env`; returns the lab
/// (still up, the tracer stopped).
fn broken_lab(env: &[(&str, &str)], via: &str) -> Lab {
    let lab = Lab::up();
    let iface = lab.iface("tailscale0");
    let t = Tracer::start_with_env(&["--netns", &lab.router, "--iface", &iface], env);
    assert_eq!(
        t.ready["ifaces"],
        serde_json::json!([{"iface": iface, "via": via}]),
        "ready.ifaces: tailscale0 watched with {via}; ready: {}",
        t.ready
    );
    if env.contains(&("TRACER_PACKET_HOOK", "clsact")) {
        for (dir, prog) in [("ingress", "pkt_rx_tc"), ("egress", "pkt_tx_tc")] {
            let shown = tc_filters(&lab, dir);
            assert!(
                shown.contains(prog) && shown.contains("direct-action"),
                "tailscale0 {dir}: a direct-action filter running {prog}:\n{shown}"
            );
        }
    }

    lab.ping(HEALTHY_ID, 1).assert_replied(1);
    lab.break_it();
    let peer = lab.ping(&BROKEN_ID.to_string(), 3);
    peer.assert_looped(3);

    t.wait_for("the loop", LOOP_TIMEOUT, |e| e["kind"] == "loop");
    let reported = t
        .arrival(|e| e["kind"] == "loop")
        .expect("the loop line was read");
    let events = t.stop();
    let loops: Vec<&Value> = events.iter().filter(|e| e["kind"] == "loop").collect();
    assert_eq!(
        loops.len(),
        1,
        "one loop event for the one looping flow (3 packets); events:\n{}\npeer:\n{}",
        lines(&events),
        peer.stdout
    );
    let e = loops[0];
    let ctx = format!("loop event: {e:#}\npeer:\n{}", peer.stdout);
    let check = |field: &str, got: &Value, want: Value| {
        assert_eq!(got, &want, "{field}; {ctx}");
    };

    check("netns.name", &e["netns"]["name"], lab.router.clone().into());
    check("iface", &e["iface"], "tailscale0".into());
    check("family", &e["family"], "inet".into());

    let (o, l) = (&e["original"], &e["looped"]);
    check("original.src", &o["src"], PEER.into());
    check("original.dst", &o["dst"], LAN_HOST.into());
    check("original.proto", &o["proto"], "icmp".into());
    check("original.ttl", &o["ttl"], 64.into());
    check("original.icmp_id", &o["icmp_id"], BROKEN_ID.into());
    check("looped.src", &l["src"], ROUTER_TAILNET_ADDR.into());
    check("looped.dst", &l["dst"], LAN_HOST.into());
    check("looped.proto", &l["proto"], "icmp".into());
    let ttl = o["ttl"]
        .as_u64()
        .unwrap_or_else(|| panic!("original.ttl; {ctx}"));
    check("looped.ttl (original.ttl - 1)", &l["ttl"], (ttl - 1).into());
    check("looped.icmp_id", &l["icmp_id"], o["icmp_id"].clone());
    check("looped.icmp_seq", &l["icmp_seq"], o["icmp_seq"].clone());
    check("looped.id (IP id kept)", &l["id"], o["id"].clone());
    check("snat (masqueraded)", &e["snat"], true.into());
    assert!(
        e["packets"].as_u64().is_some_and(|n| (1..=3).contains(&n)),
        "packets is 1..=3 (the peer sent 3); {ctx}"
    );

    let lk = &e["lookup"];
    check("lookup.table", &lk["table"], 52.into());
    check(
        "lookup.route",
        &lk["route"],
        "default dev tailscale0".into(),
    );
    check("lookup.result_dev", &lk["result_dev"], "tailscale0".into());
    check("lookup.rule_priority", &lk["rule_priority"], 5270.into());

    let s = &e["suspect"];
    check("suspect.kind", &s["kind"], "route_del".into());
    check(
        "suspect.route.dst",
        &s["route"]["dst"],
        "192.168.1.0/24".into(),
    );
    check("suspect.route.type", &s["route"]["type"], "throw".into());
    check("suspect.route.table", &s["route"]["table"], 52.into());
    check(
        "suspect.process.comm",
        &s["process"]["comm"],
        "systemd-network".into(),
    );

    // Reported within 1 s of the first looped packet (issue #3's target).
    let first_seen: chrono::DateTime<chrono::Utc> = e["first_seen"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("first_seen is an RFC 3339 time; {ctx}"));
    let latency = chrono::DateTime::<chrono::Utc>::from(reported) - first_seen;
    eprintln!(
        "loop reported {} ms after its first looped packet",
        latency.num_milliseconds()
    );
    assert!(
        latency < chrono::TimeDelta::seconds(1),
        "loop reported {latency} after its first looped packet (target: under 1 s); {ctx}"
    );

    let advice = e["advice"]
        .as_str()
        .unwrap_or_else(|| panic!("advice is a string; {ctx}"));
    assert!(
        advice.contains(LAN_HOST) && advice.contains("table 52"),
        "advice names {LAN_HOST} and table 52; {ctx}"
    );
    lab
}

/// tailscaled restarting recreates tailscale0 under a new ifindex: the
/// tracer sees the old device go and the new one come, attaches its
/// programs to the new one, and still finds the loop there.
#[test]
fn recreated_interface_is_watched_again() {
    let lab = Lab::up();
    let iface = lab.iface("tailscale0");
    let t = Tracer::start(&["--netns", &lab.router, "--iface", &iface]);
    assert_eq!(t.ready["ifaces"][0]["via"], "tc", "ready: {}", t.ready);
    lab.recreate_tun();
    t.wait_for(
        "default dev tailscale0 added again to table 52",
        Duration::from_secs(5),
        |e| {
            e["kind"] == "route_add"
                && e["route"]["table"] == 52
                && e["route"]["dst"] == "0.0.0.0/0"
                && e["route"]["dev"] == "tailscale0"
        },
    );
    lab.break_it();
    let peer = lab.ping(&BROKEN_ID.to_string(), 3);
    peer.assert_looped(3);
    t.wait_for("the loop", LOOP_TIMEOUT, |e| e["kind"] == "loop");
    let events = t.stop();
    let loops: Vec<&Value> = events.iter().filter(|e| e["kind"] == "loop").collect();
    assert_eq!(
        loops.len(),
        1,
        "one loop event after tailscale0 was recreated; events:\n{}",
        lines(&events)
    );
    assert_eq!(loops[0]["iface"], "tailscale0", "loop: {}", loops[0]);
    assert_eq!(loops[0]["lookup"]["table"], 52, "loop: {}", loops[0]);
}

#[test]
fn healthy_lab_reports_no_loop() {
    let lab = Lab::up();
    let iface = lab.iface("tailscale0");
    let t = Tracer::start(&["--netns", &lab.router, "--iface", &iface]);

    lab.ping(&BROKEN_ID.to_string(), 3).assert_replied(3);

    let events = stop_after_quiet_window(t);
    let loops: Vec<&Value> = events.iter().filter(|e| is_loop_kind(e)).collect();
    assert!(
        loops.is_empty(),
        "no loop report for a healthy router; events:\n{}",
        lines(&events)
    );
}

#[test]
fn unwatched_interface_reports_nothing() {
    let lab = Lab::up();
    // incusbr0 (10.10.10.1/24, an idle veth) carries none of the lab's traffic.
    let iface = lab.iface("incusbr0");
    let t = Tracer::start(&["--netns", &lab.router, "--iface", &iface]);

    lab.break_it();
    lab.ping(&BROKEN_ID.to_string(), 3).assert_looped(3);

    let events = stop_after_quiet_window(t);
    let loops: Vec<&Value> = events.iter().filter(|e| is_loop_kind(e)).collect();
    assert!(
        loops.is_empty(),
        "the loop is on tailscale0, which is not watched: nothing to report; events:\n{}",
        lines(&events)
    );
}
