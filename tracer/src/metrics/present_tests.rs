//! The present-state metrics, from sample events (the same the schema
//! drift tests emit): each series while its state lasts, gone after.
use prometheus_client::{encoding::text::encode, registry::Registry};

use super::{LOOPS_MAX, Present};
use crate::{
    event::{
        Body, Cause, Event, Family, GuardReport, Kind, NamespaceSeen, Netns, Ready, Route, Source,
        WatchedIface,
    },
    schema_emitted_tests::{change, event, loop_body, netns, route},
};

fn text(r: &Registry) -> String {
    let mut s = String::new();
    encode(&mut s, r).unwrap();
    s
}

fn setup() -> (Registry, Present) {
    let mut r = Registry::with_prefix("tracer");
    let p = Present::new(&mut r);
    (r, p)
}

/// The sample loop (to 192.168.1.90 on tailscale0, suspect: the removal of
/// the sample route by ip[4242] of foo.service), as `kind`.
fn a_loop(kind: Kind) -> Event {
    event(kind, Source::Tracepoint, loop_body(true))
}

const LOOP: &str = r#"tracer_loop_active{netns="t1",iface="tailscale0",dst="192.168.1.90",suspect="10.20.0.0/16 via 192.168.7.1 dev veth0 removed from table 254",by="foo.service (pid 4242)"} 1"#;

#[test]
fn a_loop_is_active_until_its_end_and_names_its_suspect() {
    let (r, mut p) = setup();
    p.event(&a_loop(Kind::Loop));
    p.event(&a_loop(Kind::LoopSummary));
    let t = text(&r);
    assert!(t.contains(LOOP), "{t}");
    assert_eq!(t.matches("tracer_loop_active{").count(), 1, "{t}");
    p.event(&a_loop(Kind::LoopEnd));
    assert!(!text(&r).contains("tracer_loop_active{"), "gone at its end");
}

#[test]
fn loops_beyond_the_cap_share_one_series() {
    let (r, mut p) = setup();
    let to = |i: usize, kind| {
        let mut e = a_loop(kind);
        if let Body::Loop(l) = &mut e.body {
            l.original.dst = format!("10.1.{}.{}", i / 256, i % 256);
        }
        e
    };
    for i in 0..LOOPS_MAX + 10 {
        p.event(&to(i, Kind::Loop));
    }
    let t = text(&r);
    assert_eq!(t.matches("tracer_loop_active{").count(), LOOPS_MAX + 1);
    assert!(
        t.contains(
            r#"tracer_loop_active{netns="t1",iface="tailscale0",dst="other",suspect="",by=""} 10"#
        ),
        "{t}"
    );
    for i in LOOPS_MAX..LOOPS_MAX + 10 {
        p.event(&to(i, Kind::LoopEnd));
    }
    let t = text(&r);
    assert!(!t.contains(r#"dst="other""#), "{t}");
    assert_eq!(t.matches("tracer_loop_active{").count(), LOOPS_MAX);
}

fn guard(kind: Kind, with_change: bool) -> Event {
    let removal = event(
        Kind::RouteDel,
        Source::Tracepoint,
        change(None, Some(route())),
    );
    event(
        kind,
        Source::Tracer,
        Body::Guard(GuardReport {
            expectation: "10.20.0.0/16 table main".into(),
            netns: netns(),
            since: "2026-11-24T19:10:39.258986Z".into(),
            grace_secs: 5.0,
            change: with_change.then(|| Box::new(removal)),
        }),
    )
}

#[test]
fn a_broken_expectation_names_the_change_until_restored() {
    let (r, mut p) = setup();
    p.event(&guard(Kind::GuardViolation, true));
    let t = text(&r);
    assert!(
        t.contains(r#"tracer_guard_expectation_broken{netns="t1",expectation="10.20.0.0/16 table main",change="10.20.0.0/16 via 192.168.7.1 dev veth0 removed from table 254",by="foo.service (pid 4242)"} 1"#),
        "{t}"
    );
    p.event(&guard(Kind::GuardRestored, false));
    assert!(!text(&r).contains("tracer_guard_expectation_broken{"));
}

fn route_event(kind: Kind, dst: &str) -> Event {
    let r = Route {
        dst: Some(dst.into()),
        ..route()
    };
    event(kind, Source::Tracepoint, change(None, Some(r)))
}

#[test]
fn routes_missing_counts_removals_not_put_back_and_the_last_removal() {
    let (r, mut p) = setup();
    p.event(&route_event(Kind::RouteDel, "10.20.0.0/16"));
    p.event(&route_event(Kind::RouteDel, "10.21.0.0/16"));
    let t = text(&r);
    assert!(
        t.contains(r#"tracer_routes_missing{netns="t1",table="254"} 2"#),
        "{t}"
    );
    assert!(
        t.contains(r#"tracer_last_route_removal_timestamp_seconds{netns="t1",table="254",route="10.21.0.0/16 via 192.168.7.1 dev veth0",by="foo.service (pid 4242)"} 1795547439.258986"#),
        "{t}"
    );
    assert_eq!(
        t.matches("tracer_last_route_removal_timestamp_seconds{")
            .count(),
        1,
        "{t}"
    );
    p.event(&route_event(Kind::RouteAdd, "10.20.0.0/16"));
    assert!(text(&r).contains(r#"tracer_routes_missing{netns="t1",table="254"} 1"#));
    // The namespace going away takes its series.
    p.event(&event(
        Kind::NetnsGone,
        Source::Netlink,
        Body::Namespace(NamespaceSeen { netns: netns() }),
    ));
    let t = text(&r);
    assert!(!t.contains("tracer_routes_missing{"), "{t}");
    assert!(
        !t.contains("tracer_last_route_removal_timestamp_seconds{"),
        "{t}"
    );
    // A change read after it (a tracer behind) makes no series again...
    p.event(&route_event(Kind::RouteDel, "10.22.0.0/16"));
    assert!(!text(&r).contains("tracer_routes_missing{"));
    // ...unless a namespace of that name comes again.
    p.event(&event(
        Kind::NetnsNew,
        Source::Netlink,
        Body::Namespace(NamespaceSeen { netns: netns() }),
    ));
    p.event(&route_event(Kind::RouteDel, "10.22.0.0/16"));
    assert!(text(&r).contains(r#"tracer_routes_missing{netns="t1",table="254"} 1"#));
}

/// A change to `r` with `cause` and `result`.
fn route_change(kind: Kind, r: Route, cause: Cause, result: Option<&str>) -> Event {
    let mut e = event(kind, Source::Tracepoint, change(None, Some(r)));
    if let Body::Change(c) = &mut e.body {
        c.cause = Some(cause);
        c.result = result.map(|r| r.to_string().into());
    }
    e
}

/// `tracer_routes_missing` counts as `report` does: a route removed with
/// its interface is gone, not missing; an IPv6 route is told apart by its
/// device (one put back on another device leaves the first missing); a
/// change not known to have failed took effect.
#[test]
fn routes_missing_counts_as_report_does() {
    let (r, mut p) = setup();
    let missing = |r: &Registry| {
        let t = text(r);
        t.lines()
            .find_map(|l| l.strip_prefix(r#"tracer_routes_missing{netns="t1",table="254"} "#))
            .map(|n| n.parse::<u32>().unwrap())
    };
    // Taken with its interface: gone, not missing.
    p.event(&route_change(
        Kind::RouteDel,
        route(),
        Cause::LinkDel,
        Some("ok"),
    ));
    assert_eq!(missing(&r), Some(0));
    // Removed, then its interface deleted: no longer missing.
    p.event(&route_change(
        Kind::RouteDel,
        route(),
        Cause::LinkDown,
        Some("ok"),
    ));
    assert_eq!(missing(&r), Some(1));
    p.event(&route_change(
        Kind::RouteDel,
        route(),
        Cause::LinkDel,
        Some("ok"),
    ));
    assert_eq!(missing(&r), Some(0));
    // IPv6: one route per device.
    let v6 = |ifindex| Route {
        family: Some(Family::Inet6),
        dst: Some("2001:db8:1::/64".into()),
        gateway: None,
        ifindex: Some(ifindex),
        ..route()
    };
    p.event(&route_change(Kind::RouteDel, v6(4), Cause::Unknown, None));
    assert_eq!(missing(&r), Some(1), "no result: taken as done");
    p.event(&route_change(
        Kind::RouteAdd,
        v6(5),
        Cause::Unknown,
        Some("ok"),
    ));
    assert_eq!(missing(&r), Some(1), "put back on another device");
    p.event(&route_change(
        Kind::RouteAdd,
        v6(4),
        Cause::Unknown,
        Some("ok"),
    ));
    assert_eq!(missing(&r), Some(0));
    // A removal that failed removed nothing.
    p.event(&route_change(
        Kind::RouteDel,
        v6(4),
        Cause::Unknown,
        Some("ESRCH"),
    ));
    assert_eq!(missing(&r), Some(0));
}

#[test]
fn build_kernel_and_attach_info() {
    let (r, mut p) = setup();
    let ready = Ready {
        hooks: [("route4_del".to_string(), Source::Tracepoint)].into(),
        functions: Default::default(),
        kernel: "6.18.44".into(),
        version: "0.1.0".into(),
        pid: 1,
        namespaces: vec![Netns::default()],
        ifaces: vec![WatchedIface {
            iface: "tailscale0".into(),
            via: Some("tc"),
            hook: Some("tcx"),
            programs: Some("always"),
        }],
    };
    p.event(&event(Kind::Ready, Source::Tracepoint, Body::Ready(ready)));
    let t = text(&r);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        t.contains(&format!(r#"tracer_build_info{{version="{version}"}} 1"#)),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            r#"tracer_kernel_info{{release="6.18.44",arch="{}"}} 1"#,
            std::env::consts::ARCH
        )),
        "{t}"
    );
    assert!(
        t.contains(r#"tracer_attach_info{hook="route4_del",mechanism="tracepoint"} 1"#),
        "{t}"
    );
    assert!(
        t.contains(r#"tracer_attach_info{hook="packets:tailscale0",mechanism="tcx"} 1"#),
        "{t}"
    );
}
