//! A loop's suspect when the change that caused it is an addition (issue
//! 15 part 5): a router sends 10.77.0.0/16 to the LAN host 192.0.4.2 on d6;
//! then either the route is replaced by one via 192.0.3.2 on d5 (the peer
//! the traffic comes from: `ip route del ...; ip route add ...`), or a rule
//! is added that sends 10.77.0.0/16 to table 77, whose route points there.
//! The peer's UDP datagrams to 10.77.0.1 come in on d5 and go straight back
//! out of it. `tracer watch --json --iface ROUTER:d5` reports one loop whose
//! suspect is that addition, with its process, as the tracer reported it.
//! Three namespaces per test (router, peer, LAN), removed on drop.
mod common;

use std::time::Duration;

use common::{Netns, TempDir, Tracer};
use serde_json::{Value, json};

const PEER: &str = "192.0.3.2";
const DST: &str = "10.77.0.1";
const DPORT: u16 = 5000;
const LOOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The router, the peer on d5 and the LAN host on d6 (which owns
/// 10.77.0.1), with main routing 10.77.0.0/16 to the LAN and table 77
/// routing it back to the peer. No ICMP redirects (noise).
struct Net {
    router: Netns,
    peer: Netns,
    lan: Netns,
}

impl Net {
    fn up(tag: &str) -> Net {
        let n = Net {
            router: Netns::new(&format!("{tag}-r")),
            peer: Netns::new(&format!("{tag}-p")),
            lan: Netns::new(&format!("{tag}-l")),
        };
        let (r, p, l) = (&n.router.name, &n.peer.name, &n.lan.name);
        common::run(
            "ip",
            &[
                "netns",
                "exec",
                r,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.default.send_redirects=0",
            ],
        );
        n.router
            .ip(&format!("link add d5 type veth peer name p5 netns {p}"));
        n.router
            .ip(&format!("link add d6 type veth peer name l6 netns {l}"));
        n.router.ip("addr add 192.0.3.1/24 dev d5");
        n.router.ip("addr add 192.0.4.1/24 dev d6");
        for d in ["lo", "d5", "d6"] {
            n.router.ip(&format!("link set {d} up"));
        }
        n.peer.ip(&format!("addr add {PEER}/24 dev p5"));
        n.peer.ip("link set lo up");
        n.peer.ip("link set p5 up");
        n.peer.ip("route add default via 192.0.3.1");
        n.lan.ip("addr add 192.0.4.2/24 dev l6");
        n.lan.ip(&format!("addr add {DST}/32 dev lo"));
        n.lan.ip("link set lo up");
        n.lan.ip("link set l6 up");
        n.lan.ip("route add default via 192.0.4.1");
        n.router.ip("route add 10.77.0.0/16 via 192.0.4.2 dev d6");
        n.router
            .ip("route add 10.77.0.0/16 via 192.0.3.2 dev d5 table 77");
        n
    }

    /// `ip -n ROUTER -batch -` run as a process named `comm` (through a
    /// symlink: the kernel names a process after the file it executed).
    fn ip_as(&self, comm: &str, batch: &str) {
        let dir = TempDir::created("loop-causes", comm);
        let ip = std::fs::canonicalize(common::run("bash", &["-c", "command -v ip"]).trim())
            .expect("the real path of ip");
        let link = dir.path().join(comm);
        std::os::unix::fs::symlink(&ip, &link).expect("symlink ip");
        let mut child = std::process::Command::new(&link)
            .args(["-n", &self.router.name, "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run ip");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(batch.as_bytes())
            .expect("write the batch");
        assert!(
            child.wait().expect("wait for ip").success(),
            "{comm}: {batch}"
        );
    }

    /// Three UDP datagrams from the peer to 10.77.0.1:5000, 100 ms apart,
    /// from one socket (one flow).
    fn send_udp(&self) {
        common::run(
            "ip",
            &[
                "netns",
                "exec",
                &self.peer.name,
                "bash",
                "-c",
                &format!(
                    "exec 3>/dev/udp/{DST}/{DPORT}; for i in 1 2 3; do echo x >&3; sleep 0.1; done"
                ),
            ],
        );
    }

    fn watch(&self) -> Tracer {
        let iface = format!("{}:d5", self.router.name);
        let t = Tracer::start(&["--netns", &self.router.name, "--iface", &iface]);
        assert_eq!(t.ready["ifaces"][0]["iface"], iface, "ready: {}", t.ready);
        t
    }
}

/// Runs the peer's traffic, waits for the loop, and returns the one loop
/// event and the change event `is_cause` picks, after checking the loop
/// field by field against `lookup`.
fn the_loop(
    net: &Net,
    t: Tracer,
    lookup: Value,
    is_cause: impl Fn(&Value) -> bool,
) -> (Value, Value) {
    net.send_udp();
    t.wait_for("the loop", LOOP_TIMEOUT, |e| e["kind"] == "loop");
    let events = t.stop();
    let all = events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let loops: Vec<&Value> = events.iter().filter(|e| e["kind"] == "loop").collect();
    assert_eq!(loops.len(), 1, "one loop event; events:\n{all}");
    let causes: Vec<&Value> = events.iter().filter(|e| is_cause(e)).collect();
    assert_eq!(
        causes.len(),
        1,
        "the change was reported once; events:\n{all}"
    );
    let e = loops[0].clone();
    let ctx = format!("loop: {e:#}");
    let check = |field: &str, got: &Value, want: Value| assert_eq!(got, &want, "{field}; {ctx}");
    check(
        "netns.name",
        &e["netns"]["name"],
        net.router.name.clone().into(),
    );
    check("iface", &e["iface"], "d5".into());
    check("family", &e["family"], "inet".into());
    let (o, l) = (&e["original"], &e["looped"]);
    for (name, p, ttl) in [("original", o, 64), ("looped", l, 63)] {
        check(&format!("{name}.src"), &p["src"], PEER.into());
        check(&format!("{name}.dst"), &p["dst"], DST.into());
        check(&format!("{name}.proto"), &p["proto"], "udp".into());
        check(&format!("{name}.dport"), &p["dport"], DPORT.into());
        check(&format!("{name}.ttl"), &p["ttl"], ttl.into());
    }
    check("looped.sport", &l["sport"], o["sport"].clone());
    check("looped.id", &l["id"], o["id"].clone());
    check("snat", &e["snat"], false.into());
    check("lookup", &e["lookup"], lookup);
    // The suspect is the change's own event, nested: without the line's
    // `host` and `machine_id`.
    let mut reported = causes[0].clone();
    reported.as_object_mut().unwrap().remove("host");
    reported.as_object_mut().unwrap().remove("machine_id");
    check("suspect (the change, as reported)", &e["suspect"], reported);
    (e, causes[0].clone())
}

#[test]
fn added_route_is_named_as_the_suspect() {
    let net = Net::up("lc-route");
    let t = net.watch();
    net.ip_as(
        "netplan",
        "route del 10.77.0.0/16 via 192.0.4.2 dev d6\nroute add 10.77.0.0/16 via 192.0.3.2 dev d5\n",
    );
    let route = "10.77.0.0/16 via 192.0.3.2 dev d5";
    let (e, cause) = the_loop(
        &net,
        t,
        json!({
            "table": 254, "table_name": "main", "rule_priority": 32766,
            "route": route, "result_dev": "d5",
            "tables_tried": [{"table": 254, "err": null}],
        }),
        |e| e["kind"] == "route_add" && e["route"]["dst"] == "10.77.0.0/16",
    );
    assert_eq!(cause["process"]["comm"], "netplan", "{cause}");
    assert_eq!(cause["route"]["gateway"], PEER, "{cause}");
    assert_eq!(cause["route"]["table"], 254, "{cause}");
    let pid = &cause["process"]["pid"];
    let advice = e["advice"].as_str().expect("advice");
    assert!(
        advice.ends_with(&format!(
            ": `{route}` was added to table 254 at {} by netplan (pid {pid})",
            cause["ts"].as_str().expect("ts")
        )),
        "{advice}"
    );
}

#[test]
fn added_rule_is_named_as_the_suspect() {
    let net = Net::up("lc-rule");
    let t = net.watch();
    net.ip_as("wg-quick", "rule add pref 100 to 10.77.0.0/16 lookup 77\n");
    let (e, cause) = the_loop(
        &net,
        t,
        json!({
            "table": 77, "table_name": null, "rule_priority": 100,
            "route": "10.77.0.0/16 via 192.0.3.2 dev d5", "result_dev": "d5",
            "tables_tried": [{"table": 255, "err": "EAGAIN"}, {"table": 77, "err": null}],
        }),
        |e| e["kind"] == "rule_add" && e["rule"]["priority"] == 100,
    );
    assert_eq!(cause["process"]["comm"], "wg-quick", "{cause}");
    assert_eq!(cause["rule"]["table"], 77, "{cause}");
    assert_eq!(cause["rule"]["dst"], "10.77.0.0/16", "{cause}");
    let pid = &cause["process"]["pid"];
    let advice = e["advice"].as_str().expect("advice");
    assert!(
        advice.ends_with(&format!(
            ": rule `inet pref 100 to 10.77.0.0/16 lookup 77` sending them to table 77 was added at {} by wg-quick (pid {pid})",
            cause["ts"].as_str().expect("ts")
        )),
        "{advice}"
    );
}
