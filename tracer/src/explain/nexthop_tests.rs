//! Routes through nexthop objects in `explain --at` and its history: the
//! state rebuilt from a journal with nexthop events (which are not routes),
//! a route that went with a deleted nexthop named with the deletion, and a
//! route rerouted by a replaced nexthop forwarding where it went.
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{
    at::lookup_at,
    history::{self, Subject},
    offline::Question,
    render,
};
use crate::{
    journal::{read::Reader, state::rebuild},
    netlink::names::TableNames,
};

fn route(dst: &str, gateway: &str, nhid: Option<u32>) -> Value {
    let mut r = json!({"family": "inet", "table": 254, "table_name": "main", "type": "unicast",
        "dst": dst, "gateway": gateway, "dev": "v0", "ifindex": 2, "metric": null,
        "protocol": "static", "scope": "global"});
    if let Some(id) = nhid {
        r["nhid"] = json!(id);
    }
    r
}

fn ns() -> Value {
    json!({"inode": 7, "name": "r"})
}

fn ip(pid: u32) -> Value {
    json!({"pid": pid, "tid": pid, "comm": "ip", "ppid": 1, "parent_comm": "bash",
           "exe": "/usr/sbin/ip", "uid": 0, "cgroup": null, "unit": null})
}

fn nexthop(id: u32, gateway: &str) -> Value {
    json!({"id": id, "family": "inet", "gateway": gateway, "dev": "v0", "ifindex": 2,
        "blackhole": false, "fdb": false, "protocol": "static", "flags": [], "group": [],
        "group_type": null, "resilient": null})
}

fn change(ts: &str, kind: &str, key: &str, obj: Value) -> Value {
    let mut v = json!({"ts": ts, "kind": kind, "source": "tracepoint", "process": ip(1234),
        "netns": ns(), "result": "ok", "cause": null, "nl_seq": null});
    v[key] = obj;
    v
}

/// Main holds a default route and two routes through nexthops 10 and 20;
/// at 12:00:10 ip[1234] deletes 10 (its route goes with it), at 12:00:20
/// replaces 20 (its route now forwards through 10.9.0.4).
fn journal() -> Vec<Value> {
    let snap = |what: &str, obj: Value| {
        let mut v = json!({"ts": "2026-04-10T12:00:00Z", "kind": "snapshot",
            "source": "netlink", "netns": ns()});
        v[what] = obj;
        v
    };
    let mut gone = change(
        "2026-04-10T12:00:10.0001Z",
        "route_del",
        "route",
        route("198.51.100.0/24", "10.9.0.2", Some(10)),
    );
    gone["cause"] = json!("nexthop_del");
    gone["cause_nhid"] = json!(10);
    let mut replaced = change(
        "2026-04-10T12:00:20Z",
        "nexthop_replace",
        "nexthop",
        nexthop(20, "10.9.0.4"),
    );
    replaced["old_nexthop"] = nexthop(20, "10.9.0.3");
    let mut rerouted = change(
        "2026-04-10T12:00:20.0001Z",
        "route_replace",
        "route",
        route("203.0.113.0/24", "10.9.0.4", Some(20)),
    );
    rerouted["old"] = route("203.0.113.0/24", "10.9.0.3", Some(20));
    rerouted["cause"] = json!("nexthop_replace");
    rerouted["cause_nhid"] = json!(20);
    vec![
        json!({"ts": "2026-04-10T12:00:00Z", "kind": "ready", "source": "tracepoint",
            "hooks": {}, "functions": {}, "kernel": "6.18", "version": "0.2.0", "pid": 9,
            "namespaces": [ns()], "ifaces": []}),
        snap(
            "rule",
            json!({"family": "inet", "priority": 32766, "table": 254, "action": "table",
                "invert": false}),
        ),
        snap("route", route("0.0.0.0/0", "10.9.0.1", None)),
        snap("route", route("198.51.100.0/24", "10.9.0.2", Some(10))),
        snap("route", route("203.0.113.0/24", "10.9.0.3", Some(20))),
        json!({"ts": "2026-04-10T12:00:00Z", "kind": "snapshot_end", "source": "netlink",
            "netns": ns(), "rules": 1, "routes": 3}),
        change(
            "2026-04-10T12:00:10Z",
            "nexthop_del",
            "nexthop",
            nexthop(10, "10.9.0.2"),
        ),
        gone,
        replaced,
        rerouted,
    ]
}

/// The journal in a file of its own (removed on drop).
struct File(PathBuf);

impl File {
    fn new(tag: &str) -> File {
        let p = std::env::temp_dir().join(format!("tracer-nh-{tag}-{}.jsonl", std::process::id()));
        let text: String = journal().iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(&p, text).unwrap();
        File(p)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ask(dst: &str) -> Question {
    Question {
        dst: Some(dst.parse().unwrap()),
        ..Question::default()
    }
}

#[test]
fn the_state_takes_nexthop_events_as_what_they_did_to_routes() {
    let f = File::new("state");
    let r = rebuild(Reader::new(vec![f.0.clone()]), None, None);
    let s = r.pick(None).unwrap();
    let dsts: Vec<(&str, &str)> = s
        .routes
        .iter()
        .map(|r| {
            (
                r.dst.as_deref().unwrap(),
                r.gateway.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        dsts,
        [("0.0.0.0/0", "10.9.0.1"), ("203.0.113.0/24", "10.9.0.4")]
    );
    // Two route changes; the nexthop objects' own events are not routes.
    assert_eq!(s.changes, 2);
    assert!(s.caveats.is_empty(), "{:?}", s.caveats);
    assert_eq!(r.log.len(), 2);
    assert_eq!(r.log[0].cause_nhid, Some(10));
}

#[test]
fn a_route_gone_with_its_nexthop_names_the_deletion() {
    let f = File::new("gone");
    let files = vec![f.0.clone()];
    let names = TableNames::default();
    // Before the deletion: through nexthop 10, its gateway and device.
    let before = lookup_at(
        files.clone(),
        Some(t("2026-04-10T12:00:05Z")),
        None,
        &ask("198.51.100.7"),
    )
    .unwrap();
    let r = before.route.as_ref().unwrap();
    assert_eq!(
        crate::describe::route_short(r),
        "198.51.100.0/24 via 10.9.0.2 dev v0 nhid 10"
    );
    // After it: the default route, and the answer names nexthop 10.
    let at = "2026-04-10T12:00:15Z";
    let l = lookup_at(files.clone(), Some(t(at)), None, &ask("198.51.100.7")).unwrap();
    assert_eq!(l.route.as_ref().unwrap().dst.as_deref(), Some("0.0.0.0/0"));
    let h = history::gather(
        Reader::new(files).filter(|e| e.as_ref().is_ok_and(|e| e.ts <= t(at))),
        &Subject {
            netns: &l.netns,
            table: 254,
            dst: "198.51.100.7".parse().unwrap(),
            priority: None,
            routes_now: &l.routes_now,
            rules_now: &l.rules_now,
        },
    );
    let gone = h.routes[0].removal().unwrap();
    assert_eq!(gone.cause_nhid, Some(10));
    let answer = render::answer(&l, &h, &names, Some(at), crate::zone::Zone::Utc).unwrap();
    assert_eq!(
        answer,
        "`198.51.100.0/24 via 10.9.0.2 dev v0 nhid 10` existed in table 254 until 2026-04-10 12:00:10 UTC and went with nexthop 10, deleted by ip (pid 1234) at 2026-04-10 12:00:10 UTC; it was still missing at 2026-04-10 12:00:15 UTC, so 198.51.100.7 then matched `default via 10.9.0.1 dev v0`"
    );
    let e = super::Explanation {
        lookup: l,
        at: Some(at.into()),
        fallback: None,
        journal: Some("j".into()),
        journal_error: None,
        history: Some(h),
        answer: Some(answer),
    };
    let text = render::text(&e, &names, crate::zone::Zone::Utc);
    assert!(
        text.contains("MISSING  present 2026-04-10 12:00:00 UTC; removed 2026-04-10 12:00:10 UTC by ip (pid 1234) (nexthop 10 deleted)"),
        "{text}"
    );
}

#[test]
fn a_route_through_a_replaced_nexthop_forwards_where_it_went() {
    let f = File::new("replaced");
    let l = lookup_at(vec![f.0.clone()], None, None, &ask("203.0.113.5")).unwrap();
    let r = l.route.as_ref().unwrap();
    assert_eq!(
        crate::describe::route_short(r),
        "203.0.113.0/24 via 10.9.0.4 dev v0 nhid 20"
    );
}
