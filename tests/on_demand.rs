//! `watch --iface --packet-programs on-demand` (tcx): the packet programs
//! leave a quiet interface, come back with a change in its namespace, and
//! sample it otherwise, and the lab's loop is reported either way. The
//! programs' presence is read from the kernel (the fdinfo of the tracer's
//! link descriptors), not from the tracer's output.
mod common;

use std::time::{Duration, Instant};

use common::{
    Netns, Tracer, doctor,
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

/// The tracer's tcx links, as the kernel describes them in the fdinfo of
/// its descriptors (`attach_type` and `ifindex`; bpftool before 7.3 does not
/// know tcx links). It watches tailscale0 only.
fn attached(t: &Tracer) -> Vec<String> {
    let mut links = Vec::new();
    let dir = format!("/proc/{}/fdinfo", t.pid());
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let Ok(info) = std::fs::read_to_string(entry.unwrap().path()) else {
            continue; // closed meanwhile
        };
        if info
            .lines()
            .any(|l| l.split_whitespace().eq(["link_type:", "tcx"]))
        {
            let field = |k: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            links.push(format!(
                "{} on ifindex {}",
                field("attach_type:"),
                field("ifindex:")
            ));
        }
    }
    links
}

/// Waits until the programs have been detached (`--armed-for` is over), in
/// the 90% of each second outside a sampling window.
fn wait_disarmed(t: &Tracer) {
    let start = Instant::now();
    loop {
        let now = attached(t);
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

/// Both programs stay attached for `time`, looked at every 20 ms.
fn stays_attached(t: &Tracer, time: Duration, why: &str) {
    let until = Instant::now() + time;
    while Instant::now() < until {
        let now = attached(t);
        assert_eq!(now.len(), 2, "both programs attached {why}: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The tracer watching `iface` in `netns` with its programs on demand,
/// armed for 1 s after start-up and each change.
fn on_demand(netns: &str, iface: &str) -> Tracer {
    Tracer::start(&[
        "--netns",
        netns,
        "--iface",
        iface,
        "--packet-programs",
        "on-demand",
        "--armed-for",
        "1s",
    ])
}

fn start(lab: &Lab) -> Tracer {
    let iface = lab.iface("tailscale0");
    let t = on_demand(&lab.router, &iface);
    assert_eq!(
        t.ready["ifaces"],
        serde_json::json!([{"iface": iface, "via": "tc", "hook": "tcx", "programs": "on_demand"}]),
        "ready: {}",
        t.ready
    );
    let at_start = attached(&t);
    assert_eq!(
        at_start.len(),
        2,
        "both programs attached at start-up: {at_start:?}"
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
    wait_disarmed(&t);
    lab.break_it();
    let peer = lab.ping(&BROKEN_ID.to_string(), 3);
    peer.assert_looped(3);
    t.wait_for("the loop", LOOP_TIMEOUT, |e| e["kind"] == "loop");
    let reported = t.arrival(|e| e["kind"] == "loop").expect("loop line read");
    let armed = attached(&t);
    assert_eq!(
        armed.len(),
        2,
        "both programs attached while the loop lasts: {armed:?}"
    );
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
    wait_disarmed(&t);
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
    // A window opens every second, and lasts from one packet tick (100 ms)
    // to the next: the first looped packet seen is one of the first
    // second's pings, or the next second's if the ticks ran late.
    let after = first_seen - started;
    assert!(
        after < chrono::TimeDelta::milliseconds(2_000),
        "the loop's first packet seen {after} after the pings started; {e}"
    );
}

/// Without `--packet-programs`, a tcx interface's programs run on demand;
/// `--packet-programs always` keeps both attached past --armed-for.
#[test]
fn on_demand_is_the_default_and_always_keeps_the_programs_attached() {
    if !tcx() {
        return;
    }
    let lab = Lab::up();
    let iface = lab.iface("tailscale0");
    let default = Tracer::start(&["--netns", &lab.router, "--iface", &iface]);
    assert_eq!(
        default.ready["ifaces"],
        serde_json::json!([{"iface": iface, "via": "tc", "hook": "tcx", "programs": "on_demand"}]),
        "ready: {}",
        default.ready
    );
    default.stop();
    let t = Tracer::start(&[
        "--netns",
        &lab.router,
        "--iface",
        &iface,
        "--packet-programs",
        "always",
        "--armed-for",
        "1s",
    ]);
    assert_eq!(t.ready["ifaces"][0]["programs"], "always", "{}", t.ready);
    // From start-up to 2 s past --armed-for: never detached, not even
    // between sampling windows.
    stays_attached(&t, Duration::from_secs(3), "with --packet-programs always");
    t.stop();
}

/// A router namespace `r` forwarding from a host namespace `h` (veth rh/hr,
/// 10.8.0.0/24 and fd08::/64) to another veth (10.9.0.0/24, fd09::/64).
fn forwarding_pair() -> (Netns, Netns) {
    let r = Netns::new("od-r");
    let h = Netns::new("od-h");
    r.ip(&format!(
        "link add rh type veth peer name hr netns {}",
        h.name
    ));
    r.ip("link add d0 type veth peer name d1");
    for (ns, dev, v4, v6) in [
        (&r, "rh", "10.8.0.1/24", "fd08::1/64"),
        (&h, "hr", "10.8.0.2/24", "fd08::2/64"),
    ] {
        ns.ip(&format!("addr add {v4} dev {dev}"));
        ns.ip(&format!("-6 addr add {v6} dev {dev} nodad"));
        ns.ip(&format!("link set {dev} up"));
    }
    r.ip("link set d0 up");
    r.ip("link set d1 up");
    r.ip("route add 10.9.0.0/24 dev d0");
    r.ip("-6 route add fd09::/64 dev d0");
    h.ip("route add default via 10.8.0.1");
    h.ip("-6 route add default via fd08::1");
    common::run(
        "ip",
        &[
            "netns",
            "exec",
            &r.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ],
    );
    (r, h)
}

/// Sends one UDP datagram from namespace `ns` to `dst` with a TTL (hop
/// limit) of 1: the router in between sends back "time exceeded".
fn send_ttl1(ns: &Netns, dst: &str) {
    let path = format!("/run/netns/{}", ns.name);
    let dst: std::net::SocketAddr = dst.parse().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(&path).unwrap();
            // SAFETY: a valid namespace descriptor; this thread only.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let bind = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let sock = std::net::UdpSocket::bind(bind).unwrap();
            if dst.is_ipv4() {
                sock.set_ttl(1).unwrap();
            } else {
                let one: libc::c_int = 1;
                // SAFETY: an int option of the right size on a live socket.
                let rc = unsafe {
                    libc::setsockopt(
                        sock.as_raw_fd(),
                        libc::IPPROTO_IPV6,
                        libc::IPV6_UNICAST_HOPS,
                        (&one as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                assert_eq!(rc, 0, "IPV6_UNICAST_HOPS");
            }
            sock.send_to(b"ttl", dst).unwrap();
        })
        .join()
        .unwrap()
    });
}

/// A router that sends ICMP time exceeded (a packet looped until its TTL
/// ran out) arms the programs at once, for longer than a sampling window:
/// no change is behind it, and the next packet of a flow that sends one a
/// second is seen.
fn time_exceeded_arms(dst: &str) {
    if !tcx() {
        return;
    }
    let (r, h) = forwarding_pair();
    let t = on_demand(&r.name, &format!("{}:rh", r.name));
    wait_disarmed(&t);
    // Just after a sampling window: the next opens about 900 ms later.
    let window = Instant::now();
    while attached(&t).is_empty() {
        assert!(
            window.elapsed() < Duration::from_secs(3),
            "no sampling window within 3 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_disarmed(&t);
    send_ttl1(&h, dst);
    let sent = Instant::now();
    // Armed within the counters' read period (100 ms) and a packet tick,
    // well before the next window.
    while attached(&t).len() < 2 {
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "not armed within 500 ms of a time-exceeded message"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // And it stays armed (30 s after a loop's sign), past any window.
    stays_attached(&t, Duration::from_millis(1500), "after time exceeded");
    t.stop();
}

#[test]
fn an_ipv4_time_exceeded_arms_the_programs() {
    time_exceeded_arms("10.9.0.5:9");
}

#[test]
fn an_ipv6_time_exceeded_arms_the_programs() {
    time_exceeded_arms("[fd09::5]:9");
}

/// How many of the tracer's classic tc filters tailscale0 has (ingress
/// and egress), as `tc filter show` lists them.
fn filters(lab: &Lab) -> usize {
    ["ingress", "egress"]
        .into_iter()
        .filter(|dir| lab.tc_filters(dir).contains("pkt_"))
        .count()
}

/// Classic tc (`TRACER_PACKET_HOOK=clsact`, as before Linux 6.6): the
/// filters are there at start-up, deleted once --armed-for is over (the
/// clsact qdisc stays), added again by the flush that breaks the lab, and
/// its loop is reported.
#[test]
fn classic_filters_come_and_go_on_demand() {
    let lab = Lab::up();
    let iface = lab.iface("tailscale0");
    let t = Tracer::start_with_env(
        &[
            "--netns",
            &lab.router,
            "--iface",
            &iface,
            "--armed-for",
            "1s",
        ],
        &[("TRACER_PACKET_HOOK", "clsact")],
    );
    assert_eq!(
        t.ready["ifaces"],
        serde_json::json!([{"iface": iface, "via": "tc", "hook": "clsact", "programs": "on_demand"}]),
        "ready: {}",
        t.ready
    );
    assert_eq!(filters(&lab), 2, "both filters at start-up");
    let start = Instant::now();
    while filters(&lab) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the filters are still there 10 s after start-up with --armed-for 1s"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    let qdisc = common::run(
        "ip",
        &[
            "netns",
            "exec",
            &lab.router,
            "tc",
            "qdisc",
            "show",
            "dev",
            "tailscale0",
        ],
    );
    assert!(qdisc.contains("clsact"), "the clsact qdisc stays: {qdisc}");
    lab.break_it();
    let peer = lab.ping(&BROKEN_ID.to_string(), 3);
    peer.assert_looped(3);
    t.wait_for("the loop", LOOP_TIMEOUT, |e| e["kind"] == "loop");
    assert_eq!(filters(&lab), 2, "both filters while the loop lasts");
    let events = t.stop();
    let found = loops(&events);
    assert_eq!(found.len(), 1, "one loop event: {found:?}");
    lab::check_loop_of(V4, found[0], &lab.router, &peer.stdout, "clsact", false);
    assert_eq!(filters(&lab), 0, "no filter outlives the tracer");
}
