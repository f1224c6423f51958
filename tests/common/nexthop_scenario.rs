//! The nexthop part of tests/scenario.sh: objects added, one replaced, all
//! deleted; every route that went with them named, with the process that
//! deleted the object, in the order the kernel made the changes.
use serde_json::{Value, json};

use super::{assert_process, one};

fn nexthop_is(e: &Value, kind: &str, id: u64) -> bool {
    e["kind"] == kind && e["nexthop"]["id"] == id
}

fn route_is(e: &Value, kind: &str, dst: &str) -> bool {
    e["kind"] == kind && e["route"]["dst"] == dst
}

/// (gateway, dev, weight) of each next hop of a route.
fn hops(r: &Value) -> Vec<(String, String, u64)> {
    r["nexthops"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h["gateway"].as_str().unwrap_or("?").to_string(),
                        h["dev"].as_str().unwrap_or("?").to_string(),
                        h["weight"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn hop(gw: &str, weight: u64) -> (String, String, u64) {
    (gw.to_string(), "v0".to_string(), weight)
}

pub fn check(mine: &[Value], ns: &str, source: &str) {
    let mut order = Vec::new();
    let mut at = |e: &Value| {
        let i = mine.iter().position(|m| m == e).expect("event from mine");
        order.push(i);
    };
    // Additions.
    for (id, gw, family) in [
        (10, "192.168.1.2", "inet"),
        (11, "2001:db8:1::2", "inet6"),
        (12, "192.168.1.3", "inet"),
    ] {
        let e = one(mine, &format!("nexthop_add id {id}"), |e| {
            nexthop_is(e, "nexthop_add", id)
        });
        assert_process(e, "ip", ns, source);
        let n = &e["nexthop"];
        assert_eq!(n["gateway"], gw, "{e}");
        assert_eq!(n["family"], family, "{e}");
        assert_eq!(n["dev"], "v0", "{e}");
        assert!(n["ifindex"].as_u64().is_some_and(|i| i > 0), "{e}");
        assert_eq!(n["blackhole"], false, "{e}");
        assert_eq!(n["group"], json!([]), "{e}");
        assert_eq!(n["group_type"], Value::Null, "{e}");
        assert_eq!(e["result"], "ok", "{e}");
        assert_eq!(e["cause"], Value::Null, "{e}");
        assert!(e.get("old_nexthop").is_none(), "{e}");
        at(e);
    }
    let e = one(mine, "nexthop_add group 20", |e| {
        nexthop_is(e, "nexthop_add", 20)
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(
        e["nexthop"]["group"],
        json!([{"id": 10, "weight": 1}, {"id": 12, "weight": 3}]),
        "{e}"
    );
    assert_eq!(e["nexthop"]["group_type"], "mpath", "{e}");
    assert_eq!(e["nexthop"]["gateway"], Value::Null, "{e}");
    at(e);
    // Routes through them show what they forward to.
    for (dst, table, gw) in [
        ("198.51.100.0/24", 100, "192.168.1.2"),
        ("198.51.101.0/24", 254, "192.168.1.2"),
        ("2001:db8:77::/64", 100, "2001:db8:1::2"),
    ] {
        let e = one(mine, &format!("route_add {dst} nhid"), |e| {
            route_is(e, "route_add", dst)
        });
        assert_process(e, "ip", ns, source);
        assert_eq!(e["route"]["table"], table, "{e}");
        assert_eq!(e["route"]["gateway"], gw, "{e}");
        assert_eq!(e["route"]["dev"], "v0", "{e}");
        at(e);
    }
    let e = one(mine, "route_add 203.0.113.0/24 nhid 20", |e| {
        route_is(e, "route_add", "203.0.113.0/24")
    });
    assert_eq!(e["route"]["nhid"], 20, "{e}");
    assert_eq!(
        hops(&e["route"]),
        [hop("192.168.1.2", 1), hop("192.168.1.3", 3)],
        "{e}"
    );
    at(e);
    // The replacement, and the group's route it rerouted.
    let e = one(mine, "nexthop_replace id 12", |e| {
        nexthop_is(e, "nexthop_replace", 12)
    });
    assert_process(e, "ip", ns, source);
    let replacer = e["process"]["pid"].clone();
    assert_eq!(e["nexthop"]["gateway"], "192.168.1.4", "{e}");
    assert_eq!(e["old_nexthop"]["gateway"], "192.168.1.3", "{e}");
    assert_eq!(e["cause"], Value::Null, "{e}");
    at(e);
    let replaced: Vec<&Value> = mine
        .iter()
        .filter(|e| route_is(e, "route_replace", "203.0.113.0/24"))
        .collect();
    assert_eq!(
        replaced.len(),
        2,
        "rerouted by the replacement, then by the deletion of 10: {replaced:#?}"
    );
    let e = replaced[0];
    assert_process(e, "ip", ns, source);
    assert_eq!(e["process"]["pid"], replacer, "{e}");
    assert_eq!(e["cause"], "nexthop_replace", "{e}");
    assert_eq!(e["cause_nhid"], 12, "{e}");
    assert_eq!(
        hops(&e["old"]),
        [hop("192.168.1.2", 1), hop("192.168.1.3", 3)],
        "{e}"
    );
    assert_eq!(
        hops(&e["route"]),
        [hop("192.168.1.2", 1), hop("192.168.1.4", 3)],
        "{e}"
    );
    at(e);
    // Deleting 10: the object, its group without it, the group's route,
    // then its own two IPv4 routes (of which the kernel says nothing).
    let e = one(mine, "nexthop_del id 10", |e| {
        nexthop_is(e, "nexthop_del", 10)
    });
    assert_process(e, "ip", ns, source);
    assert_eq!(e["nexthop"]["gateway"], "192.168.1.2", "{e}");
    assert_eq!(e["result"], "ok", "{e}");
    let deleter = e["process"]["pid"].clone();
    at(e);
    let by_deleter = |e: &Value, nhid: u64| {
        assert_process(e, "ip", ns, source);
        assert_eq!(e["process"]["pid"], deleter, "{e}");
        assert_eq!(e["cause"], "nexthop_del", "{e}");
        assert_eq!(e["cause_nhid"], nhid, "{e}");
        assert_eq!(e["result"], "ok", "{e}");
    };
    let e = one(mine, "nexthop_replace of group 20 losing 10", |e| {
        nexthop_is(e, "nexthop_replace", 20)
    });
    by_deleter(e, 10);
    assert_eq!(
        e["nexthop"]["group"],
        json!([{"id": 12, "weight": 3}]),
        "{e}"
    );
    assert_eq!(
        e["old_nexthop"]["group"].as_array().map(Vec::len),
        Some(2),
        "{e}"
    );
    at(e);
    let e = replaced[1];
    by_deleter(e, 10);
    assert_eq!(hops(&e["route"]), [hop("192.168.1.4", 3)], "{e}");
    at(e);
    for (dst, table) in [("198.51.100.0/24", 100), ("198.51.101.0/24", 254)] {
        let e = one(mine, &format!("route_del {dst} with nexthop 10"), |e| {
            route_is(e, "route_del", dst)
        });
        by_deleter(e, 10);
        assert_eq!(e["route"]["table"], table, "{e}");
        assert_eq!(e["route"]["nhid"], 10, "{e}");
        assert_eq!(e["route"]["gateway"], "192.168.1.2", "{e}");
        assert_eq!(e["route"]["dev"], "v0", "{e}");
        assert_eq!(e["route"]["family"], "inet", "{e}");
        at(e);
    }
    // Deleting 11: its IPv6 route, once (the kernel also announces it).
    let e = one(mine, "nexthop_del id 11", |e| {
        nexthop_is(e, "nexthop_del", 11)
    });
    assert_process(e, "ip", ns, source);
    at(e);
    let e = one(mine, "route_del 2001:db8:77::/64 with nexthop 11", |e| {
        route_is(e, "route_del", "2001:db8:77::/64")
    });
    assert_eq!(e["cause"], "nexthop_del", "{e}");
    assert_eq!(e["cause_nhid"], 11, "{e}");
    assert_eq!(e["route"]["gateway"], "2001:db8:1::2", "{e}");
    assert_eq!(e["route"]["metric"], 1024, "{e}");
    at(e);
    // Deleting 12: group 20 goes with its last member, and its route.
    let e = one(mine, "nexthop_del id 12", |e| {
        nexthop_is(e, "nexthop_del", 12)
    });
    assert_process(e, "ip", ns, source);
    let deleter = e["process"]["pid"].clone();
    at(e);
    let e = one(mine, "nexthop_del group 20", |e| {
        nexthop_is(e, "nexthop_del", 20)
    });
    assert_eq!(e["process"]["pid"], deleter, "{e}");
    assert_eq!(
        (&e["cause"], &e["cause_nhid"]),
        (&json!("nexthop_del"), &json!(12)),
        "{e}"
    );
    at(e);
    let e = one(mine, "route_del 203.0.113.0/24 with group 20", |e| {
        route_is(e, "route_del", "203.0.113.0/24")
    });
    assert_eq!(e["process"]["pid"], deleter, "{e}");
    assert_eq!(
        (&e["cause"], &e["cause_nhid"]),
        (&json!("nexthop_del"), &json!(12)),
        "{e}"
    );
    assert_eq!(e["route"]["nhid"], 20, "{e}");
    at(e);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "nexthop events out of order");
    // Nothing else about them: no event of an unknown cause, none twice.
    let about = |e: &&Value| {
        e["nexthop"].is_object()
            || [
                "198.51.100.0/24",
                "198.51.101.0/24",
                "2001:db8:77::/64",
                "203.0.113.0/24",
            ]
            .iter()
            .any(|d| e["route"]["dst"] == *d)
    };
    let all: Vec<&Value> = mine.iter().filter(about).collect();
    assert_eq!(
        all.len(),
        order.len(),
        "unexpected nexthop-related events: {all:#?}"
    );
}
