//! Why the kernel removed routes no request named, on this machine's kernel:
//! each cause (link down, link removed, address removed, nexthop deleted,
//! namespace deleted) with the process behind the action, asserted field by
//! field, and a removal is never credited to an action on another device
//! (issue 12, "Blame carried to the wrong event"). Each action is run by a
//! copy of `ip` under a name of its own, so the process named is provably
//! the one that acted; a namespace's deletion by the `ip netns del` whose
//! pid the test knows.
mod common;

use std::{path::PathBuf, time::Duration};

use common::{Netns, TempDir, Tracer, run};
use serde_json::Value;

/// A copy of `ip` named `comm` (not starting with "ip": iproute2 reads a
/// command from such a name).
fn ip_as(dir: &TempDir, comm: &str) -> PathBuf {
    let ip = run("sh", &["-c", "command -v ip"]);
    let path = dir.path().join(comm);
    std::fs::copy(ip.trim(), &path).expect("copy ip");
    path
}

fn act(bin: &std::path::Path, ns: &Netns, args: &str) {
    let mut argv = vec!["-n", ns.name.as_str()];
    argv.extend(args.split_whitespace());
    run(bin.to_str().unwrap(), &argv);
}

/// v0/v1 with 10.9.0.1/24 on v0, d1/d2 with 10.8.0.1/24 on d1, all up.
fn two_links(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    for (a, b) in [("v0", "v1"), ("d1", "d2")] {
        ns.ip(&format!("link add {a} type veth peer name {b}"));
        ns.ip(&format!("link set {a} up"));
        ns.ip(&format!("link set {b} up"));
    }
    ns.ip("addr add 10.9.0.1/24 dev v0");
    ns.ip("addr add 10.8.0.1/24 dev d1");
    ns
}

fn removal<'a>(events: &'a [Value], dst: &str, table: u64) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "route_del" && e["route"]["dst"] == dst && e["route"]["table"] == table
        })
        .collect()
}

fn only<'a>(events: &'a [Value], dst: &str, table: u64) -> &'a Value {
    let found = removal(events, dst, table);
    assert_eq!(
        found.len(),
        1,
        "one route_del of {dst} table {table}; all events:\n{}",
        events
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    found[0]
}

fn by(e: &Value, comm: &str, cause: &str) {
    assert_eq!(e["process"]["comm"], comm, "{e}");
    assert!(e["process"]["pid"].as_u64().is_some_and(|p| p > 0), "{e}");
    assert_eq!(e["cause"], cause, "{e}");
    assert_eq!(e["result"], "ok", "{e}");
    assert!(e["note"].as_str().is_some_and(|n| !n.is_empty()), "{e}");
}

#[test]
fn a_late_link_down_is_not_blamed_for_routes_a_nexthop_took() {
    let dir = TempDir::created("tracer-it-causes", "blame");
    let nhdel = ip_as(&dir, "nhdel");
    let linkdown = ip_as(&dir, "linkdown");
    let ns = two_links("blame");
    ns.ip("nexthop add id 8 via 10.9.0.2 dev v0");
    ns.ip("route add 198.51.100.0/24 nhid 8 table 100");
    ns.ip("route add 198.51.101.0/24 nhid 8");
    ns.ip("route add 10.7.0.0/24 via 10.8.0.2 dev d1 table 100");
    let t = Tracer::start(&["--netns", &ns.name]);
    act(&nhdel, &ns, "nexthop del id 8");
    t.wait_for("the nexthop's routes", Duration::from_secs(5), |e| {
        e["route"]["dst"] == "198.51.101.0/24"
    });
    act(&linkdown, &ns, "link set d1 down");
    t.wait_for("the link-down removals", Duration::from_secs(5), |e| {
        e["cause"] == "link_down" && e["route"]["dst"] == "10.8.0.0/24"
    });
    let events = t.stop();
    let del = events
        .iter()
        .find(|e| e["kind"] == "nexthop_del")
        .expect("nexthop_del");
    assert_eq!(del["process"]["comm"], "nhdel", "{del}");
    assert_eq!(del["nexthop"]["id"], 8, "{del}");
    assert_eq!(del["nexthop"]["gateway"], "10.9.0.2", "{del}");
    assert_eq!(del["nexthop"]["dev"], "v0", "{del}");
    for (dst, table) in [("198.51.100.0/24", 100), ("198.51.101.0/24", 254)] {
        let e = only(&events, dst, table);
        by(e, "nhdel", "nexthop_del");
        assert_eq!(e["process"]["pid"], del["process"]["pid"], "{e}");
        assert_eq!(e["cause_nhid"], 8, "{e}");
        assert_eq!(e["route"]["nhid"], 8, "{e}");
        assert_eq!(e["route"]["gateway"], "10.9.0.2", "{e}");
        assert_eq!(e["route"]["dev"], "v0", "{e}");
    }
    for (dst, table) in [("10.8.0.0/24", 254), ("10.7.0.0/24", 100)] {
        let e = only(&events, dst, table);
        by(e, "linkdown", "link_down");
        assert!(e.get("cause_nhid").is_none(), "{e}");
        assert_eq!(e["route"]["dev"], "d1", "{e}");
    }
    // The link-down explains nothing on v0.
    for e in events.iter().filter(|e| e["process"]["comm"] == "linkdown") {
        assert_ne!(e["route"]["dev"], "v0", "blamed on a link down of d1: {e}");
    }
}

#[test]
fn each_kernel_removal_names_its_cause_and_process() {
    let dir = TempDir::created("tracer-it-causes", "each");
    let linkdel = ip_as(&dir, "linkdel");
    let addrdel = ip_as(&dir, "addrdel");
    let ns = two_links("each");
    ns.ip("route add 10.7.0.0/24 via 10.8.0.2 dev d1 table 100");
    let t = Tracer::start(&["--netns", &ns.name]);
    act(&linkdel, &ns, "link del d1");
    t.wait_for("the link-del removals", Duration::from_secs(5), |e| {
        e["cause"] == "link_del" && e["route"]["dst"] == "10.7.0.0/24"
    });
    act(&addrdel, &ns, "addr del 10.9.0.1/24 dev v0");
    t.wait_for("the address removal", Duration::from_secs(5), |e| {
        e["cause"] == "addr_del" && e["route"]["dst"] == "10.9.0.0/24"
    });
    let name = ns.name.clone();
    let deleter = ns.delete();
    t.wait_for("the namespace's end", Duration::from_secs(5), |e| {
        e["kind"] == "netns_gone"
    });
    let events = t.stop();
    for (dst, table) in [("10.7.0.0/24", 100), ("10.8.0.0/24", 254)] {
        let e = only(&events, dst, table);
        by(e, "linkdel", "link_del");
        assert_eq!(e["route"]["dev"], "d1", "{e}");
    }
    let e = only(&events, "10.9.0.0/24", 254);
    by(e, "addrdel", "addr_del");
    assert_eq!(e["route"]["dev"], "v0", "{e}");
    assert_eq!(e["route"]["protocol"], "kernel", "{e}");
    let e = only(&events, "10.9.0.1/32", 255);
    by(e, "addrdel", "addr_del");
    assert_eq!(e["route"]["type"], "local", "{e}");
    // What the namespace still held went with it, then the namespace:
    // by the `ip netns del` that unmounted /run/netns/NAME.
    let ip_exe = std::fs::canonicalize(run("sh", &["-c", "command -v ip"]).trim()).unwrap();
    let gone: Vec<&Value> = events
        .iter()
        .filter(|e| e["cause"] == "netns_exit")
        .collect();
    assert!(!gone.is_empty(), "no netns_exit removal");
    for e in &gone {
        assert_eq!(e["kind"], "route_del", "{e}");
        assert_eq!(e["netns"]["name"], name.as_str(), "{e}");
        assert_eq!(e["result"], "ok", "{e}");
        let p = &e["process"];
        assert_eq!(p["comm"], "ip", "{e}");
        assert_eq!(p["pid"], deleter, "{e}");
        assert_eq!(p["tid"], deleter, "{e}");
        assert_eq!(p["ppid"], std::process::id(), "{e}");
        assert_eq!(p["exe"], ip_exe.to_str().unwrap(), "{e}");
        assert_eq!(p["uid"], 0, "{e}");
        assert_eq!(
            e["note"],
            "removed with its network namespace, which went away when this process unmounted its bind mount",
            "{e}"
        );
        assert_ne!(e["route"]["dev"], "d1", "d1 was deleted before: {e}");
    }
    assert!(
        gone.iter()
            .any(|e| e["route"]["dst"] == "fe80::/64" && e["route"]["dev"] == "v0"),
        "v0's link-local route went with the namespace: {gone:#?}"
    );
    let end = events
        .iter()
        .position(|e| e["kind"] == "netns_gone")
        .unwrap();
    let last = events
        .iter()
        .rposition(|e| e["cause"] == "netns_exit")
        .unwrap();
    assert!(last < end, "removals before netns_gone");
}
