//! Assertions on the events of tests/scenario.sh, shared by the tests on
//! this kernel and inside QEMU. Every expected event is checked field by
//! field.
use serde_json::Value;

#[path = "nexthop_scenario.rs"]
mod nexthops;

/// Find exactly one event matching `pred`, with context on failure.
pub fn one<'a>(events: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| pred(e)).collect();
    assert!(
        found.len() == 1,
        "expected exactly one event for {what}, found {}:\n{}\nall events:\n{}",
        found.len(),
        found
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        events
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    found[0]
}

fn route_is(e: &Value, kind: &str, table: u64, dst: &str) -> bool {
    e["kind"] == kind && e["route"]["table"] == table && e["route"]["dst"] == dst
}

fn rule_is(e: &Value, kind: &str, prio: u64) -> bool {
    e["kind"] == kind && e["rule"]["priority"] == prio
}

/// The process fields every attributed event carries.
fn assert_process(e: &Value, comm: &str, ns: &str, source: &str) {
    assert_eq!(e["source"], source, "source of {e}");
    let p = &e["process"];
    assert_eq!(p["comm"], comm, "comm of {e}");
    assert!(p["pid"].as_u64().is_some_and(|v| v > 0), "pid of {e}");
    assert!(p["tid"].as_u64().is_some_and(|v| v > 0), "tid of {e}");
    assert!(p["ppid"].as_u64().is_some_and(|v| v > 0), "ppid of {e}");
    assert!(
        p["parent_comm"].as_str().is_some_and(|s| !s.is_empty()),
        "parent_comm of {e}"
    );
    assert_eq!(p["uid"], 0, "uid of {e}");
    assert!(
        p["exe"]
            .as_str()
            .is_some_and(|s| s.ends_with(&format!("/{comm}"))),
        "exe of {e}"
    );
    assert!(
        e["netns"]["inode"].as_u64().is_some_and(|v| v > 0),
        "netns inode of {e}"
    );
    assert_eq!(e["netns"]["name"], ns, "netns name of {e}");
    assert!(
        e["ts"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 27),
        "ts of {e}"
    );
}

/// Check the whole scenario. `source` is the mechanism expected on the
/// route, rule and nexthop hooks ("tracepoint", "kprobe", "fentry").
pub fn check(events: &[Value], ns: &str, source: &str) {
    let ready = &events[0];
    assert_eq!(ready["kind"], "ready", "first line must be ready: {ready}");
    for hook in [
        "rule_del",
        "rule_add",
        "route4_del",
        "route4_add",
        "route6_del",
        "route6_add",
        "route4_flush",
        "nexthop_del",
        "nexthop_add",
    ] {
        assert_eq!(
            ready["hooks"][hook], source,
            "mechanism of {hook} in {ready}"
        );
    }
    let mine: Vec<Value> = events
        .iter()
        .filter(|e| e["netns"]["name"] == ns)
        .cloned()
        .collect();

    let e = one(&mine, "route_add throw 192.168.1.0/24 table 52", |e| {
        route_is(e, "route_add", 52, "192.168.1.0/24")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["route"]["family"], "inet");
    assert_eq!(e["route"]["type"], "throw");
    assert_eq!(e["route"]["protocol"], "boot");
    assert_eq!(e["route"]["gateway"], Value::Null);
    assert_eq!(e["result"], "ok");
    assert_eq!(e["cause"], Value::Null);

    let e = one(&mine, "route_add default dev v0 table 52", |e| {
        route_is(e, "route_add", 52, "0.0.0.0/0")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["route"]["dev"], "v0");
    assert_eq!(e["route"]["type"], "unicast");

    let e = one(&mine, "rule_add pref 5210", |e| {
        rule_is(e, "rule_add", 5210)
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["rule"]["family"], "inet");
    assert_eq!(e["rule"]["fwmark"], 0x80000);
    assert_eq!(e["rule"]["fwmask"], 0xff0000);
    assert_eq!(e["rule"]["table"], 254);
    assert_eq!(e["rule"]["table_name"], "main");
    assert_eq!(e["rule"]["action"], "table");
    assert_eq!(e["result"], "ok");

    let e = one(&mine, "rule_add pref 5270", |e| {
        rule_is(e, "rule_add", 5270)
    });
    assert_eq!(e["rule"]["table"], 52);

    let e = one(&mine, "route_add 2001:db8:2::/64 table 100", |e| {
        route_is(e, "route_add", 100, "2001:db8:2::/64")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["route"]["family"], "inet6");
    assert_eq!(e["route"]["dev"], "v0");
    assert_eq!(e["route"]["metric"], 1024);

    // The incident's removals.
    let e = one(&mine, "route_del throw 192.168.1.0/24 table 52", |e| {
        route_is(e, "route_del", 52, "192.168.1.0/24")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(
        e["route"]["type"], "throw",
        "the removed route's type must be named: {e}"
    );
    assert_eq!(e["result"], "ok");
    assert_eq!(e["cause"], Value::Null);

    let e = one(&mine, "rule_del pref 5270", |e| {
        rule_is(e, "rule_del", 5270)
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(
        e["rule"]["table"], 52,
        "the removed rule's table must be named: {e}"
    );
    assert_eq!(e["result"], "ok");

    let e = one(&mine, "route_del 2001:db8:2::/64 table 100", |e| {
        route_is(e, "route_del", 100, "2001:db8:2::/64")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["route"]["family"], "inet6");
    assert_eq!(e["result"], "ok");

    let e = one(&mine, "failed route_del 10.9.9.0/24", |e| {
        route_is(e, "route_del", 52, "10.9.9.0/24")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["result"], "ESRCH");

    // sendto-based program.
    let e = one(&mine, "nlraw route_add 10.20.0.0/16", |e| {
        route_is(e, "route_add", 52, "10.20.0.0/16")
    });
    assert_process(e, "nlraw", ns, source);
    assert_eq!(e["route"]["type"], "blackhole");
    assert_eq!(e["route"]["protocol"], "static");
    assert_eq!(e["result"], "ok");
    let e = one(&mine, "nlraw route_del 10.20.0.0/16", |e| {
        route_is(e, "route_del", 52, "10.20.0.0/16")
    });
    assert_process(e, "nlraw", ns, source);
    assert_eq!(e["result"], "ok");
    let e = one(&mine, "nlraw rule_add 6000", |e| {
        rule_is(e, "rule_add", 6000)
    });
    assert_process(e, "nlraw", ns, source);
    assert_eq!(e["rule"]["table"], 52);
    let e = one(&mine, "nlraw rule_del 6000", |e| {
        rule_is(e, "rule_del", 6000)
    });
    assert_process(e, "nlraw", ns, source);

    forms(&mine, ns, source);
    nexthops::check(&mine, ns, source);

    // Link down: routes through v0 vanish without a request.
    let e = one(&mine, "link-down removal of default dev v0 table 52", |e| {
        route_is(e, "route_del", 52, "0.0.0.0/0")
    });
    assert_process(e, "ip", ns, source);
    assert!(
        e["cause"] == "link_down",
        "cause of {e}\nall events:\n{}",
        mine.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(e["route"]["dev"], "v0");
    assert_eq!(e["result"], "ok");
    let e = one(&mine, "link-down removal of 192.168.1.0/24 in main", |e| {
        route_is(e, "route_del", 254, "192.168.1.0/24")
    });
    assert_eq!(e["cause"], "link_down", "{e}");
    assert_eq!(e["route"]["protocol"], "kernel");
    let e = one(&mine, "link-down removal of 2001:db8:1::/64 in main", |e| {
        route_is(e, "route_del", 254, "2001:db8:1::/64")
    });
    assert_eq!(e["cause"], "link_down", "{e}");
    assert_eq!(e["process"]["comm"], "ip");
}

/// The request forms of issue 9: `from all` rules, a delete naming no
/// priority, IPv6 rules, replacements, a multipath route, and the routes
/// the kernel adds for an address. Each is reported once, credited to
/// `ip`, in the order the script ran them.
fn forms(mine: &[Value], ns: &str, source: &str) {
    let mut order = Vec::new();
    let mut at = |e: &Value| {
        let i = mine.iter().position(|m| m == e).expect("event from mine");
        order.push((i, e["kind"].to_string()));
    };
    for (kind, prio, family, table) in [
        ("rule_add", 5271, "inet", 52),
        ("rule_add", 3007, "inet", 254),
        ("rule_add", 3008, "inet6", 52),
        ("rule_del", 5271, "inet", 52),
        ("rule_del", 3007, "inet", 254),
        ("rule_del", 3008, "inet6", 52),
    ] {
        let e = one(
            mine,
            &format!("{kind} pref {prio} from all ({family})"),
            |e| rule_is(e, kind, prio) && e["rule"]["family"] == family,
        );
        assert_process(e, "ip", ns, source);
        assert_eq!(e["rule"]["table"], table, "{e}");
        assert_eq!(e["rule"]["src"], Value::Null, "from all is no source: {e}");
        assert_eq!(e["result"], "ok", "{e}");
        assert_eq!(e["cause"], Value::Null, "{e}");
        at(e);
    }
    let e = one(mine, "rule_add 3007's fwmark", |e| {
        rule_is(e, "rule_add", 3007)
    });
    assert_eq!(e["rule"]["fwmark"], 0x80000);
    assert_eq!(e["rule"]["fwmask"], 0xff0000);

    let e = one(mine, "route_add blackhole 10.66.0.0/16", |e| {
        route_is(e, "route_add", 254, "10.66.0.0/16")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["route"]["type"], "blackhole");
    at(e);
    let e = one(mine, "route_replace (change) 10.66.0.0/16", |e| {
        route_is(e, "route_replace", 254, "10.66.0.0/16")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["route"]["type"], "unicast", "{e}");
    assert_eq!(e["route"]["gateway"], "192.168.1.9", "{e}");
    assert_eq!(e["old"]["type"], "blackhole", "the replaced route: {e}");
    assert_eq!(e["old"]["dst"], "10.66.0.0/16", "{e}");
    assert_eq!(e["result"], "ok");
    at(e);
    let e = one(mine, "route_add 10.9.0.0/16 via .2 table 52", |e| {
        route_is(e, "route_add", 52, "10.9.0.0/16")
    });
    assert_eq!(e["route"]["gateway"], "192.168.1.2");
    at(e);
    let e = one(mine, "route_replace 10.9.0.0/16 table 52", |e| {
        route_is(e, "route_replace", 52, "10.9.0.0/16")
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["route"]["gateway"], "192.168.1.3", "{e}");
    assert_eq!(e["old"]["gateway"], "192.168.1.2", "{e}");
    assert_eq!(e["old"]["dev"], "v0", "{e}");
    at(e);
    let e = one(mine, "multipath route_add 10.5.0.0/24", |e| {
        route_is(e, "route_add", 254, "10.5.0.0/24")
    });
    assert_process(e, "ip", ns, source);
    let hops = e["route"]["nexthops"].as_array().expect("nexthops");
    let hops: Vec<(&str, &str, u64)> = hops
        .iter()
        .map(|h| {
            (
                h["gateway"].as_str().unwrap_or("?"),
                h["dev"].as_str().unwrap_or("?"),
                h["weight"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        hops,
        [("192.168.1.2", "v0", 1), ("192.168.1.3", "v0", 2)],
        "{e}"
    );
    at(e);
    // IPv6 multipath: one event each way, whatever the kernel does per
    // next hop (fib6_add and fib6_del run once per sibling).
    for kind in ["route_add", "route_del"] {
        let e = one(
            mine,
            &format!("IPv6 multipath {kind} 2001:db8:5::/64"),
            |e| route_is(e, kind, 254, "2001:db8:5::/64"),
        );
        assert_process(e, "ip", ns, source);
        assert_eq!(e["route"]["gateway"], Value::Null, "{e}");
        let gws: Vec<&str> = e["route"]["nexthops"]
            .as_array()
            .map(|h| h.iter().filter_map(|h| h["gateway"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(gws, ["2001:db8:1::2", "2001:db8:1::3"], "{e}");
        at(e);
    }
    // In the order the script made them.
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "events out of order");

    // The routes the kernel adds for `ip addr add 192.168.1.1/24 dev v0`.
    let e = one(mine, "local route of 192.168.1.1", |e| {
        route_is(e, "route_add", 255, "192.168.1.1/32")
    });
    assert_eq!(e["cause"], "addr_add", "{e}");
    assert_eq!(e["process"]["comm"], "ip", "{e}");
    assert_eq!(e["route"]["type"], "local");
    assert_eq!(e["result"], "ok");
    for e in mine.iter().filter(|e| e["kind"] != "ready") {
        assert!(
            e["cause"] != "kernel",
            "no event may name a cause that did not happen: {e}"
        );
    }
}
