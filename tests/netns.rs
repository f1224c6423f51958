//! Namespaces without an `ip netns` name, on this machine's kernel: one
//! held only by a process (`unshare -n`, as LXC/Incus hold theirs) and one
//! bind-mounted in a temporary directory (as Docker does under
//! /run/docker/netns). Each is mirrored like a named one: its changes carry
//! the route and rule as the kernel holds them, and the name the tracer
//! gives it. New ones are picked up, and gone ones reported, within 1 s.
//! `tests/netns_names.rs` has the names: `explain` and `guard` taking any
//! of them, and namespaces made and deleted quickly.
mod common;

use std::time::{Duration, SystemTime};

use common::{
    Tracer, doctor,
    holder::{BindMount, Holder, in_ns},
    run,
};
use serde_json::{Value, json};

fn expected_source() -> String {
    doctor()["hooks"]["route4_del"]["mechanism"]
        .as_str()
        .expect("mechanism")
        .to_string()
}

/// A route addition and removal and a rule addition in the namespace of
/// `h`, each asserted field by field as the kernel holds them, with the
/// process that made it and the name `name` the tracer gives the
/// namespace.
fn changes_are_read_from_the_kernel(t: &Tracer, h: &Holder, name: &str) {
    let source = expected_source();
    let inode = h.inode();
    let ifindex = h.ifindex("v0");
    let add = h.ip("route add 10.61.0.0/24 dev v0 proto static");
    let rule = h.ip("rule add pref 1061 from 10.61.0.0/24 table 100 proto static");
    let del = h.ip("route del 10.61.0.0/24 dev v0");
    t.wait_for("the route removal", Duration::from_secs(10), |e| {
        e["kind"] == "route_del" && in_ns(e, inode)
    });
    let events: Vec<Value> = t
        .events()
        .into_iter()
        .filter(|e| in_ns(e, inode))
        .filter(|e| e["route"]["dst"] == "10.61.0.0/24" || e["rule"]["priority"] == 1061)
        .collect();
    let netns = json!({"inode": inode, "name": name});
    let route = json!({
        "family": "inet", "table": 254, "table_name": "main", "type": "unicast",
        "dst": "10.61.0.0/24", "gateway": null, "dev": "v0", "ifindex": ifindex,
        "metric": 0, "protocol": "static", "scope": "link",
    });
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["route_add", "rule_add", "route_del"],
        "events: {events:#?}"
    );
    for (e, kind, pid) in [
        (&events[0], "route_add", add),
        (&events[1], "rule_add", rule),
        (&events[2], "route_del", del),
    ] {
        assert_eq!(e["kind"], kind);
        assert_eq!(e["source"], source.as_str(), "{e}");
        assert_eq!(e["netns"], netns, "{e}");
        assert_eq!(e["process"]["pid"], pid, "{e}");
        assert_eq!(e["process"]["comm"], "ip", "{e}");
        assert_eq!(e["result"], "ok", "{e}");
        assert_eq!(e["cause"], Value::Null, "{e}");
        assert!(e.get("note").is_none(), "nothing unknown: {e}");
        if kind == "rule_add" {
            assert_eq!(
                e["rule"],
                json!({
                    "family": "inet", "priority": 1061, "table": 100, "table_name": null,
                    "action": "table", "goto": null, "src": "10.61.0.0/24", "dst": null,
                    "fwmark": null, "fwmask": null, "iif": null, "oif": null,
                    "uid_range": null, "ipproto": null, "sport": null, "dport": null,
                    "tos": null, "suppress_prefixlen": null, "invert": false,
                    "protocol": "static",
                }),
                "{e}"
            );
        } else {
            assert_eq!(e["route"], route, "{e}");
        }
    }
}

fn ready_lists(t: &Tracer, inode: u64, name: &str) {
    let listed = t.ready["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["inode"] == inode && n["name"] == name);
    assert!(listed, "ready lacks {name} ({inode}): {}", t.ready);
}

#[test]
fn a_namespace_held_by_a_process_is_named_pid_n() {
    let h = Holder::new();
    h.veth();
    let name = format!("pid:{}", h.pid());
    // --netns takes the name too (and so watches only this namespace).
    let t = Tracer::start(&["--netns", &name]);
    ready_lists(&t, h.inode(), &name);
    assert_eq!(t.ready["namespaces"].as_array().unwrap().len(), 1);
    changes_are_read_from_the_kernel(&t, &h, &name);
    t.stop();
}

#[test]
fn a_bind_mounted_namespace_is_named_by_its_mount() {
    let h = Holder::new();
    h.veth();
    let mount = BindMount::new(h.pid());
    let t = Tracer::start(&[]);
    ready_lists(&t, h.inode(), &mount.name);
    changes_are_read_from_the_kernel(&t, &h, &mount.name);
    t.stop();
    // And by that name with --netns.
    let t = Tracer::start(&["--netns", &mount.name]);
    ready_lists(&t, h.inode(), &mount.name);
    assert_eq!(t.ready["namespaces"].as_array().unwrap().len(), 1);
    t.stop();
}

fn within(t: &Tracer, what: &str, since: SystemTime, pred: impl Fn(&Value) -> bool + Copy) {
    t.wait_for(what, Duration::from_secs(5), pred);
    let at = t.arrival(pred).unwrap();
    let took = at.duration_since(since).unwrap_or_default();
    assert!(took < Duration::from_secs(1), "{what} took {took:?}");
}

#[test]
fn namespaces_that_come_and_go_are_reported_within_a_second() {
    let t = Tracer::start(&[]);

    // A namespace made after ready.
    let since = SystemTime::now();
    let mut h = Holder::new();
    let inode = h.inode();
    let name = format!("pid:{}", h.pid());
    within(&t, "the new namespace", since, |e| {
        e["kind"] == "netns_new" && in_ns(e, inode)
    });
    let new = t
        .events()
        .into_iter()
        .find(|e| e["kind"] == "netns_new" && in_ns(e, inode))
        .unwrap();
    assert_eq!(new["source"], "tracer");
    assert_eq!(new["netns"], json!({"inode": inode, "name": name}));
    // Mirrored from then on: its changes are read from the kernel.
    h.veth();
    changes_are_read_from_the_kernel(&t, &h, &name);

    // Gone: its process killed.
    let since = SystemTime::now();
    h.kill();
    within(&t, "the gone namespace", since, |e| {
        e["kind"] == "netns_gone" && in_ns(e, inode)
    });
    let gone = t
        .events()
        .into_iter()
        .find(|e| e["kind"] == "netns_gone" && in_ns(e, inode))
        .unwrap();
    assert_eq!(gone["netns"], json!({"inode": inode, "name": name}));

    // A bind-mounted one made after ready, gone when unmounted and its
    // process killed.
    let since = SystemTime::now();
    let mut h = Holder::new();
    let mount = BindMount::new(h.pid());
    let inode = h.inode();
    within(&t, "the new bind-mounted namespace", since, |e| {
        e["kind"] == "netns_new" && in_ns(e, inode)
    });
    let since = SystemTime::now();
    mount.umount();
    h.kill();
    within(&t, "the unmounted namespace", since, |e| {
        e["kind"] == "netns_gone" && in_ns(e, inode)
    });
    t.stop();
}

/// A namespace only a process held (`unshare -n sleep`) ends when that
/// process is killed: the routes it took with it name that `sleep`, read
/// while it held the namespace, field by field.
#[test]
fn routes_of_a_namespace_held_by_a_process_alone_go_with_that_process() {
    let mut h = Holder::new();
    h.veth();
    h.ip("addr add 10.64.0.1/24 dev v0");
    let (pid, inode) = (h.pid(), h.inode());
    let t = Tracer::start(&["--netns", &format!("pid:{pid}")]);
    // At least one scan of the scanner thread sees it held.
    std::thread::sleep(Duration::from_millis(700));
    h.kill();
    t.wait_for("the namespace's end", Duration::from_secs(5), |e| {
        e["kind"] == "netns_gone" && in_ns(e, inode)
    });
    let events = t.stop();
    let sleep_exe = std::fs::canonicalize(run("sh", &["-c", "command -v sleep"]).trim()).unwrap();
    let parent_comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let gone: Vec<&Value> = events
        .iter()
        .filter(|e| e["cause"] == "netns_exit")
        .collect();
    assert!(
        gone.iter()
            .any(|e| e["route"]["dst"] == "10.64.0.0/24" && e["route"]["dev"] == "v0"),
        "the address's prefix route went with the namespace: {gone:#?}"
    );
    for e in &gone {
        assert_eq!(e["kind"], "route_del", "{e}");
        assert!(in_ns(e, inode), "{e}");
        assert_eq!(e["netns"]["name"], format!("pid:{pid}"), "{e}");
        assert_eq!(e["result"], "ok", "{e}");
        let p = &e["process"];
        assert_eq!(p["pid"], pid, "{e}");
        assert_eq!(p["tid"], pid, "{e}");
        assert_eq!(p["comm"], "sleep", "{e}");
        assert_eq!(p["exe"], sleep_exe.to_str().unwrap(), "{e}");
        assert_eq!(p["ppid"], std::process::id(), "{e}");
        assert_eq!(p["parent_comm"], parent_comm.trim(), "{e}");
        assert_eq!(p["uid"], 0, "{e}");
        assert_eq!(
            e["note"],
            "removed with its network namespace, which went away when this process exited: it was the only one holding it at the last scan, and no bind mount held it",
            "{e}"
        );
    }
}
