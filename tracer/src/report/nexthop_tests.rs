//! Nexthop objects in the report: their additions, deletions and
//! replacements worded as `ip nexthop` shows them, the routes that went
//! with a deleted one naming its deletion (in every format), missing
//! objects, and the filters.
use serde_json::{Value, json};

use super::{
    lab_tests::{body, select},
    model::{FateState, Item, Report},
    select::Select,
    synthetic_tests::{change, proc, synthetic},
    words::Zone,
};

fn nexthop(id: u32, gateway: Option<&str>, group: &[(u32, u32)]) -> Value {
    let members: Vec<Value> = group
        .iter()
        .map(|(id, w)| json!({"id": id, "weight": w}))
        .collect();
    let single = group.is_empty();
    json!({"id": id, "family": if single { json!("inet") } else { Value::Null },
        "gateway": gateway, "dev": if single { json!("v0") } else { Value::Null },
        "ifindex": if single { json!(2) } else { Value::Null },
        "blackhole": false, "fdb": false, "protocol": "static", "flags": [],
        "group": members, "group_type": if single { Value::Null } else { json!("mpath") },
        "resilient": null})
}

fn nh_route(dst: &str, nhid: u32, gateway: Option<&str>, hops: &[(&str, u32)]) -> Value {
    let hops: Vec<Value> = hops
        .iter()
        .map(|(gw, w)| json!({"gateway": gw, "dev": "v0", "ifindex": 2, "weight": w, "flags": []}))
        .collect();
    let mut r = json!({"family": "inet", "table": 100, "table_name": null, "type": "unicast",
        "dst": dst, "gateway": gateway, "dev": gateway.map(|_| "v0"),
        "ifindex": gateway.map(|_| 2), "metric": null, "protocol": "static",
        "scope": "global", "nhid": nhid});
    if !hops.is_empty() {
        r["nexthops"] = json!(hops);
    }
    r
}

/// A change the kernel made with nexthop 10's deletion.
fn with_10(mut v: Value) -> Value {
    v["cause"] = json!("nexthop_del");
    v["cause_nhid"] = json!(10);
    v["nl_seq"] = Value::Null;
    v
}

/// Nexthops 10 and 12 and group 20 (10/12,3) added by ip[1200], routes
/// through 10 and 20 in table 100 by ip[1201]; ip[1234] deletes 10 at
/// 07:00:10, which takes 198.51.100.0/24 with it and shrinks the group
/// (its route forwards through 12 only); ip[1300] fails to add 12 again.
pub(super) fn nexthop_lines() -> Vec<Value> {
    let ip = |pid| proc(pid, "ip", None);
    let group = nexthop(20, None, &[(10, 1), (12, 3)]);
    let mut replace = with_10(change(
        "2026-04-10T07:00:10.0002Z",
        "nexthop_replace",
        ip(1234),
        ("nexthop", nexthop(20, None, &[(12, 3)])),
        "ok",
    ));
    replace["old_nexthop"] = group.clone();
    let mut rerouted = with_10(change(
        "2026-04-10T07:00:10.0003Z",
        "route_replace",
        ip(1234),
        (
            "route",
            nh_route("203.0.113.0/24", 20, None, &[("10.9.0.3", 3)]),
        ),
        "ok",
    ));
    rerouted["old"] = nh_route(
        "203.0.113.0/24",
        20,
        None,
        &[("10.9.0.2", 1), ("10.9.0.3", 3)],
    );
    vec![
        change(
            "2026-04-10T07:00:00Z",
            "nexthop_add",
            ip(1200),
            ("nexthop", nexthop(10, Some("10.9.0.2"), &[])),
            "ok",
        ),
        change(
            "2026-04-10T07:00:00.1Z",
            "nexthop_add",
            ip(1200),
            ("nexthop", nexthop(12, Some("10.9.0.3"), &[])),
            "ok",
        ),
        change(
            "2026-04-10T07:00:00.2Z",
            "nexthop_add",
            ip(1200),
            ("nexthop", group),
            "ok",
        ),
        change(
            "2026-04-10T07:00:01Z",
            "route_add",
            ip(1201),
            (
                "route",
                nh_route("198.51.100.0/24", 10, Some("10.9.0.2"), &[]),
            ),
            "ok",
        ),
        change(
            "2026-04-10T07:00:01.1Z",
            "route_add",
            ip(1201),
            (
                "route",
                nh_route(
                    "203.0.113.0/24",
                    20,
                    None,
                    &[("10.9.0.2", 1), ("10.9.0.3", 3)],
                ),
            ),
            "ok",
        ),
        change(
            "2026-04-10T07:00:10Z",
            "nexthop_del",
            ip(1234),
            ("nexthop", nexthop(10, Some("10.9.0.2"), &[])),
            "ok",
        ),
        with_10(change(
            "2026-04-10T07:00:10.0001Z",
            "route_del",
            ip(1234),
            (
                "route",
                nh_route("198.51.100.0/24", 10, Some("10.9.0.2"), &[]),
            ),
            "ok",
        )),
        replace,
        rerouted,
        change(
            "2026-04-10T07:00:20Z",
            "nexthop_add",
            ip(1300),
            ("nexthop", nexthop(12, Some("10.9.0.3"), &[])),
            "EEXIST",
        ),
    ]
}

fn report(sel: &Select) -> Report {
    synthetic(&nexthop_lines(), sel, vec![])
}

const GONE_ROUTE: &str = "inet 198.51.100.0/24 via 10.9.0.2 dev v0 nhid 10 table 100 proto static";

#[test]
fn nexthop_episodes_are_worded_as_ip_nexthop_shows_them() {
    let t = body(&report(&Select::default()));
    for want in [
        "07:00:00  ip (pid 1200) added 3 nexthops (id 10 via 10.9.0.2 dev v0, id 12 via 10.9.0.3 dev v0, id 20 group 10/12,3)\n",
        "07:00:01  ip (pid 1201) added 2 routes (198.51.100.0/24 via 10.9.0.2 dev v0 nhid 10 table 100, 203.0.113.0/24 nhid 20 nexthop via 10.9.0.2 dev v0 weight 1 nexthop via 10.9.0.3 dev v0 weight 3 table 100)\n",
        "07:00:10  ip (pid 1234) removed 1 nexthop (id 10 via 10.9.0.2 dev v0) and 1 route (198.51.100.0/24 via 10.9.0.2 dev v0 nhid 10 table 100) (the kernel, with nexthop 10); replaced 1 nexthop (id 20 group 12,3) and 1 route (203.0.113.0/24 nhid 20 nexthop via 10.9.0.3 dev v0 weight 3 table 100)\n",
        "          still missing: nexthop id 10 via 10.9.0.2 dev v0\n",
        &format!(
            "          still missing: {GONE_ROUTE}, removed with nexthop 10 (deleted by ip (pid 1234) at 07:00:10)\n"
        ),
        "          replaced: nexthop id 20 group 10/12,3 with nexthop id 20 group 12,3\n",
        "          replaced: 203.0.113.0/24 nhid 20 nexthop via 10.9.0.2 dev v0 weight 1 nexthop via 10.9.0.3 dev v0 weight 3 table 100 with 203.0.113.0/24 nhid 20 nexthop via 10.9.0.3 dev v0 weight 3 table 100\n",
        "07:00:20  ip (pid 1300) failed 1 request\n",
        "          failed: nexthop_add nexthop id 12 via 10.9.0.3 dev v0: EEXIST\n",
        "Still missing at the end (2026-04-10 07:00:20):\n",
        "  nexthop id 10 via 10.9.0.2 dev v0, removed at 2026-04-10 07:00:10 by ip (pid 1234)\n",
        &format!(
            "  {GONE_ROUTE}, removed at 2026-04-10 07:00:10 by ip (pid 1234) with nexthop 10 (deleted by ip (pid 1234) at 07:00:10)\n"
        ),
    ] {
        assert!(t.contains(want), "no {want:?} in\n{t}");
    }
}

/// The JSON episode of process `pid`.
fn episode_of(v: &Value, pid: u32) -> &Value {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["actor"]["pids"] == json!([pid]))
        .unwrap()
}

#[test]
fn report_json_names_the_nexthop_deletion_behind_a_missing_route() {
    let v = serde_json::to_value(report(&Select::default())).unwrap();
    let missing = v["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 2, "{missing:#?}");
    // The object itself, deleted and not added again.
    assert_eq!(missing[0]["nexthop"]["id"], 10);
    assert_eq!(missing[0]["nexthop"]["gateway"], "10.9.0.2");
    assert_eq!(missing[0]["cause"], Value::Null);
    assert_eq!(missing[0]["with_nexthop"], Value::Null);
    assert_eq!(missing[0]["removed_by"]["pids"], json!([1234]));
    // The route that went with it: which object, who deleted it, when.
    let m = &missing[1];
    assert_eq!(m["route"]["dst"], "198.51.100.0/24");
    assert_eq!(m["route"]["nhid"], 10);
    assert_eq!(m["cause"], "nexthop_del");
    let w = &m["with_nexthop"];
    assert_eq!(w["id"], 10);
    assert_eq!(w["ts"], "2026-04-10T07:00:10.000000Z");
    assert_eq!(w["by"]["comm"], "ip");
    assert_eq!(w["by"]["pids"], json!([1234]));
    assert_eq!(w["nexthop"]["gateway"], "10.9.0.2");
    assert_eq!(w["nexthop"]["dev"], "v0");
    // The episode says the same, and the group's replacement its old self.
    let ep = episode_of(&v, 1234);
    assert_eq!(ep["removed"][0]["nexthop"]["id"], 10);
    assert_eq!(ep["removed"][0]["with_nexthop"], Value::Null);
    assert_eq!(ep["removed"][0]["fate"]["state"], "missing");
    assert_eq!(ep["removed"][1]["with_nexthop"], *w);
    assert_eq!(
        ep["added"][0]["nexthop"]["group"],
        json!([{"id": 12, "weight": 3}])
    );
    assert_eq!(
        ep["added"][0]["replaces"]["group"],
        json!([{"id": 10, "weight": 1}, {"id": 12, "weight": 3}])
    );
    assert_eq!(
        ep["added"][1]["replaces"]["nexthops"][0]["gateway"],
        "10.9.0.2"
    );
    let failed = episode_of(&v, 1300);
    assert_eq!(failed["failed"][0]["kind"], "nexthop_add");
    assert_eq!(failed["failed"][0]["nexthop"]["id"], 12);
}

#[test]
fn a_nexthop_added_again_is_restored_and_its_route_stays_missing() {
    let mut lines = nexthop_lines();
    lines.push(change(
        "2026-04-10T07:00:30Z",
        "nexthop_add",
        proc(1400, "zebra", Some("frr.service")),
        ("nexthop", nexthop(10, Some("10.9.0.4"), &[])),
        "ok",
    ));
    let r = synthetic(&lines, &Select::default(), vec![]);
    let Some(Item::Episode(ep)) = r
        .timeline
        .iter()
        .find(|i| matches!(i, Item::Episode(e) if e.actor.pids == [1234]))
    else {
        panic!()
    };
    assert_eq!(ep.removed[0].fate.state, FateState::Restored);
    assert_eq!(ep.removed[1].fate.state, FateState::Missing);
    assert_eq!(r.missing.len(), 1);
    let t = body(&r);
    assert!(
        t.contains("restored at 07:00:30 by frr.service (pid 1400, zebra): 1 nexthop (id 10 via 10.9.0.2 dev v0)\n"),
        "{t}"
    );
    assert!(
        t.contains(
            "07:00:30  frr.service (pid 1400, zebra) added 1 nexthop (id 10 via 10.9.0.4 dev v0)\n"
        ),
        "{t}"
    );
    assert!(
        t.contains("puts back what ip (pid 1234) removed at 07:00:10: 1 nexthop"),
        "{t}"
    );
}

#[test]
fn table_and_dst_keep_the_routes_that_went_with_a_nexthop_and_leave_the_objects_out() {
    for args in [&["--table", "100"][..], &["--dst", "198.51.100.7"]] {
        let r = report(&select(args));
        let v = serde_json::to_value(&r).unwrap();
        let text = v.to_string();
        assert!(!text.contains("\"nexthop\":{\"id\""), "{args:?}: {text}");
        assert_eq!(r.missing.len(), 1, "{args:?}");
        assert_eq!(v["missing"][0]["with_nexthop"]["id"], 10);
        assert_eq!(v["missing"][0]["with_nexthop"]["by"]["pids"], json!([1234]));
        // ip[1200] added nexthop objects only: nothing of it is shown.
        let t = body(&r);
        assert!(!t.contains("pid 1200"), "{args:?}: {t}");
        assert!(
            t.contains("removed with nexthop 10 (deleted by ip (pid 1234)"),
            "{t}"
        );
    }
    // --comm chooses the deleter's episode, objects and routes alike.
    let r = report(&select(&["--comm", "ip"]));
    assert_eq!(r.missing.len(), 2);
    let r = report(&select(&["--comm", "zebra"]));
    assert!(r.missing.is_empty());
}

#[test]
fn markdown_and_html_name_the_nexthop_deletion() {
    let r = report(&Select::default());
    let md = super::markdown::render(&r, Zone::Utc);
    for want in [
        "| 07:00:10 | ip (pid 1234) removed 1 nexthop (id 10 via 10.9.0.2 dev v0) and 1 route (198.51.100.0/24 via 10.9.0.2 dev v0 nhid 10 table 100) (the kernel, with nexthop 10); replaced 1 nexthop (id 20 group 12,3)",
        "- nexthop id 10 via 10.9.0.2 dev v0: removed at 07:00:10 by ip (pid 1234), still missing at the end",
        "nhid 10 table 100 proto static: removed at 07:00:10 by ip (pid 1234) with nexthop 10 (deleted by ip (pid 1234) at 07:00:10), still missing at the end",
    ] {
        assert!(md.contains(want), "no {want:?} in\n{md}");
    }
    let html = super::html::render(&r, Zone::Utc);
    assert!(html.contains("nexthop id 20 group 10/12,3"), "{html}");
    assert!(
        html.contains("with nexthop 10 (deleted by ip (pid 1234) at 07:00:10)"),
        "{html}"
    );
}
