//! Nexthop objects from recorded notification sequences, as the kernel
//! sends them (net/ipv4/nexthop.c): the deletion's notification first, then
//! a changed group's, then the IPv6 routes' removals (none for IPv4).
use std::time::{Duration, Instant};

use super::*;
use crate::{
    collect::task::Task,
    event::{GroupMember, Nexthop},
    netlink::decode::{LinkChange, NlItem, NlObj},
};

const NS: u32 = 7;

fn who(pid: u32) -> Task {
    Task::named(pid, NS, "ip")
}

fn single(id: u32, gw: &str, ifindex: u32) -> Nexthop {
    Nexthop {
        id,
        family: Some(if gw.contains(':') {
            Family::Inet6
        } else {
            Family::Inet
        }),
        gateway: Some(gw.into()),
        ifindex: Some(ifindex),
        protocol: Some("boot".into()),
        ..Nexthop::default()
    }
}

fn group(id: u32, members: &[(u32, u32)]) -> Nexthop {
    Nexthop {
        id,
        group: members
            .iter()
            .map(|&(id, weight)| GroupMember { id, weight })
            .collect(),
        group_type: Some("mpath".into()),
        protocol: Some("boot".into()),
        ..Nexthop::default()
    }
}

fn route(dst: &str, table: u32, nhid: u32) -> Route {
    Route {
        family: Some(if dst.contains(':') {
            Family::Inet6
        } else {
            Family::Inet
        }),
        table: Some(table),
        rtype: Some("unicast".into()),
        dst: Some(dst.into()),
        protocol: Some("boot".into()),
        scope: Some("global".into()),
        nhid: Some(nhid),
        metric: dst.contains(':').then_some(1024),
        ..Route::default()
    }
}

fn item(seq: u32, portid: u32, flags: u16, obj: NlObj) -> NlItem {
    NlItem {
        seq,
        portid,
        flags,
        obj,
    }
}

fn nh(op: Op, n: Nexthop) -> NlObj {
    NlObj::Nexthop {
        op,
        nexthop: Box::new(n),
    }
}

/// A namespace with link v0 (ifindex 2), nexthops 10 (IPv4) and 11 (IPv6),
/// group 20 of both, and routes through each, all from notifications of
/// requests already reported.
fn engine() -> (Engine, Instant) {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    e.mirror(NS).load_links(&[item(
        0,
        0,
        0,
        NlObj::Link(LinkChange {
            deleted: false,
            ifindex: 2,
            name: Some("v0".into()),
            up: Some(true),
        }),
    )]);
    let setup = [
        nh(Op::Add, single(10, "10.9.0.2", 2)),
        nh(Op::Add, single(11, "fd09::2", 2)),
        nh(Op::Add, group(20, &[(10, 1), (11, 3)])),
        NlObj::Route {
            op: Op::Add,
            route: route("198.51.100.0/24", 100, 10),
        },
        NlObj::Route {
            op: Op::Add,
            route: route("198.51.101.0/24", 254, 10),
        },
        NlObj::Route {
            op: Op::Add,
            route: route("fd77::/64", 100, 11),
        },
        NlObj::Route {
            op: Op::Add,
            route: route("203.0.113.0/24", 100, 20),
        },
    ];
    for obj in setup {
        e.notification(NS, item(0, 0, 0, obj), t);
    }
    let _ = e.tick(t + Duration::from_secs(5));
    e.take_outcomes();
    (e, t + Duration::from_secs(5))
}

fn del_request(e: &mut Engine, pid: u32, id: u32, seq: u32, t: Instant) {
    let named = Nexthop {
        id,
        ..Nexthop::default()
    };
    e.add_request(
        &who(pid),
        NS,
        Op::Del,
        Object::Nexthop(Box::new(named)),
        seq,
        t,
    );
}

/// (kind of change, the object's words, cause, cause_nhid, pid)
type Summary = (String, String, Option<Cause>, Option<u32>, Option<u32>);

fn summary(out: &[Outcome]) -> Vec<Summary> {
    out.iter()
        .map(|o| {
            let replace = if o.replaced.is_some() { "replace" } else { "" };
            let (kind, what) = match &o.object {
                Object::Route(r) => (
                    format!("route {:?}{replace}", o.op),
                    format!(
                        "{} via {:?} dev {:?} hops {}",
                        r.dst.clone().unwrap_or_default(),
                        r.gateway,
                        r.dev,
                        r.nexthops.len()
                    ),
                ),
                Object::Nexthop(n) => (
                    format!("nexthop {:?}{replace}", o.op),
                    format!("id {} members {}", n.id, n.group.len()),
                ),
                Object::Rule(_) => ("rule".into(), String::new()),
            };
            (kind, what, o.cause, o.cause_nhid, o.who.map(|w| w.pid))
        })
        .collect()
}

#[test]
fn routes_resolve_to_their_nexthop_object() {
    let (mut e, t) = engine();
    e.add_request(
        &who(5),
        NS,
        Op::Add,
        Object::Route(Route {
            dst: Some("192.0.2.0/24".into()),
            nhid: Some(10),
            ..Route::default()
        }),
        3,
        t,
    );
    e.notification(
        NS,
        item(
            3,
            5,
            0,
            NlObj::Route {
                op: Op::Add,
                route: route("192.0.2.0/24", 254, 10),
            },
        ),
        t,
    );
    let out = e.take_outcomes();
    let Object::Route(r) = &out[0].object else {
        panic!("{out:?}")
    };
    assert_eq!(r.nhid, Some(10));
    assert_eq!(r.gateway.as_deref(), Some("10.9.0.2"));
    assert_eq!(r.dev.as_deref(), Some("v0"));
    assert_eq!(r.ifindex, Some(2));
}

#[test]
fn deleting_a_nexthop_names_every_route_and_group_that_went_with_it() {
    let (mut e, t) = engine();
    del_request(&mut e, 812, 10, 41, t);
    // The kernel: RTM_DELNEXTHOP 10, then group 20 without it; no message
    // for the IPv4 routes.
    e.notification(
        NS,
        item(41, 812, 0, nh(Op::Del, single(10, "10.9.0.2", 2))),
        t,
    );
    e.notification(NS, item(41, 812, 0, nh(Op::Add, group(20, &[(11, 3)]))), t);
    let out = e.take_outcomes();
    let pid = Some(812);
    let nd = Some(Cause::NexthopDel);
    assert_eq!(
        summary(&out),
        vec![
            (
                "nexthop Del".into(),
                "id 10 members 0".into(),
                None,
                None,
                pid
            ),
            (
                "nexthop Addreplace".into(),
                "id 20 members 1".into(),
                nd,
                Some(10),
                pid
            ),
            (
                "route Addreplace".into(),
                "203.0.113.0/24 via None dev None hops 1".into(),
                nd,
                Some(10),
                pid
            ),
            (
                "route Del".into(),
                "198.51.100.0/24 via Some(\"10.9.0.2\") dev Some(\"v0\") hops 0".into(),
                nd,
                Some(10),
                pid
            ),
            (
                "route Del".into(),
                "198.51.101.0/24 via Some(\"10.9.0.2\") dev Some(\"v0\") hops 0".into(),
                nd,
                Some(10),
                pid
            ),
        ],
        "{out:#?}"
    );
    // The group's route, before and after.
    let Some(Object::Route(old)) = &out[2].replaced else {
        panic!()
    };
    assert_eq!(old.nexthops.len(), 2);
    assert_eq!(old.nexthops[0].gateway.as_deref(), Some("10.9.0.2"));
    assert_eq!(old.nexthops[1].weight, 3);
    assert_eq!(
        out[1].note,
        Some(Note::WithNexthop {
            id: 10,
            deleted: true
        })
    );
    assert_eq!(
        e.mirror(NS).route_count(),
        2,
        "fd77::/64 and 203.0.113.0/24 remain"
    );
    let _ = e.tick(t + Duration::from_secs(1));
    assert!(e.take_outcomes().is_empty());
}

#[test]
fn an_ipv6_route_reported_with_its_nexthop_is_not_reported_again() {
    let (mut e, t) = engine();
    del_request(&mut e, 813, 11, 42, t);
    e.notification(
        NS,
        item(42, 813, 0, nh(Op::Del, single(11, "fd09::2", 2))),
        t,
    );
    e.notification(NS, item(42, 813, 0, nh(Op::Add, group(20, &[(10, 1)]))), t);
    // The kernel announces the IPv6 route's removal (nexthop compat mode).
    e.notification(
        NS,
        item(
            42,
            813,
            0,
            NlObj::Route {
                op: Op::Del,
                route: route("fd77::/64", 100, 11),
            },
        ),
        t,
    );
    let _ = e.tick(t + Duration::from_secs(1));
    let out = e.take_outcomes();
    let s = summary(&out);
    assert_eq!(s.len(), 4, "{s:#?}");
    assert_eq!(s[0].0, "nexthop Del");
    assert_eq!(s[3].0, "route Del");
    assert!(
        s[3].1.starts_with("fd77::/64 via Some(\"fd09::2\")"),
        "{s:#?}"
    );
    assert_eq!(
        (s[3].2, s[3].3, s[3].4),
        (Some(Cause::NexthopDel), Some(11), Some(813))
    );
}

#[test]
fn a_group_that_loses_its_last_member_goes_with_its_routes() {
    let (mut e, t) = engine();
    del_request(&mut e, 814, 10, 43, t);
    e.notification(
        NS,
        item(43, 814, 0, nh(Op::Del, single(10, "10.9.0.2", 2))),
        t,
    );
    del_request(&mut e, 814, 11, 44, t);
    e.notification(
        NS,
        item(44, 814, 0, nh(Op::Del, single(11, "fd09::2", 2))),
        t,
    );
    // The kernel's own notification of group 20's end: reported already.
    e.notification(NS, item(44, 814, 0, nh(Op::Del, group(20, &[]))), t);
    let _ = e.tick(t + Duration::from_secs(1));
    let s = summary(&e.take_outcomes());
    let kinds: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "nexthop Del",        // 10
            "nexthop Addreplace", // 20 keeps 11
            "route Addreplace",   // 203.0.113.0/24 through 20
            "route Del",          // 198.51.100.0/24
            "route Del",          // 198.51.101.0/24
            "nexthop Del",        // 11
            "nexthop Del",        // 20, its last member gone
            "route Del",          // 203.0.113.0/24
            "route Del",          // fd77::/64
        ],
        "{s:#?}"
    );
    assert_eq!((s[6].2, s[6].3), (Some(Cause::NexthopDel), Some(11)));
    assert!(s[7].1.starts_with("203.0.113.0/24"), "{s:#?}");
    assert_eq!(e.mirror(NS).route_count(), 0);
}

#[test]
fn replacing_a_nexthop_reroutes_its_routes() {
    let (mut e, t) = engine();
    let new = single(10, "10.9.0.3", 2);
    e.add_request(
        &who(815),
        NS,
        Op::Add,
        Object::Nexthop(Box::new(new.clone())),
        45,
        t,
    );
    e.notification(NS, item(45, 815, 0, nh(Op::Add, new)), t);
    // The kernel's compat-mode notifications of the routes it rerouted.
    for r in [
        route("198.51.100.0/24", 100, 10),
        route("198.51.101.0/24", 254, 10),
    ] {
        let obj = NlObj::Route {
            op: Op::Add,
            route: r,
        };
        e.notification(NS, item(45, 815, NLM_F_REPLACE, obj), t);
    }
    let _ = e.tick(t + Duration::from_secs(1));
    let out = e.take_outcomes();
    let s = summary(&out);
    assert_eq!(
        s.len(),
        4,
        "nexthop_replace, two routes through 10, one through group 20: {s:#?}"
    );
    assert_eq!(s[0].0, "nexthop Addreplace");
    let Some(Object::Nexthop(old)) = &out[0].replaced else {
        panic!()
    };
    assert_eq!(old.gateway.as_deref(), Some("10.9.0.2"));
    for o in &out[1..] {
        assert_eq!(
            (o.cause, o.cause_nhid),
            (Some(Cause::NexthopReplace), Some(10))
        );
        assert_eq!(o.who.map(|w| w.pid), Some(815));
    }
    let Object::Route(r) = &out[1].object else {
        panic!()
    };
    let Some(Object::Route(was)) = &out[1].replaced else {
        panic!()
    };
    assert_eq!(r.gateway.as_deref(), Some("10.9.0.3"));
    assert_eq!(was.gateway.as_deref(), Some("10.9.0.2"));
}

#[test]
fn a_failed_deletion_takes_nothing_with_it() {
    let (mut e, t) = engine();
    del_request(&mut e, 816, 99, 46, t);
    e.ack(&who(816), -2, 46, t);
    let s = summary(&e.take_outcomes());
    assert_eq!(s.len(), 1);
    assert_eq!(e.mirror(NS).route_count(), 4);
}

#[test]
fn a_removal_on_another_device_is_not_blamed_on_a_link_going_down() {
    let (mut e, t) = engine();
    // `ip link set d1 down` (ifindex 3) explains routes on d1 only.
    e.causes.note(
        NS,
        causes::RecentCause {
            cause: Cause::LinkDown,
            who: who(900),
            source: Source::Tracepoint,
            at: t,
            ifindex: Some(3),
        },
    );
    let on_v0 = Route {
        ifindex: Some(2),
        metric: Some(1024),
        ..route("fd78::/64", 100, 0)
    };
    let on_d1 = Route {
        ifindex: Some(3),
        ..on_v0.clone()
    };
    let on_d1 = Route {
        dst: Some("fd79::/64".into()),
        ..on_d1
    };
    for r in [on_v0.clone(), on_d1.clone()] {
        let mut r = r;
        r.nhid = None;
        e.notification(
            NS,
            item(
                0,
                0,
                0,
                NlObj::Route {
                    op: Op::Del,
                    route: r,
                },
            ),
            t,
        );
    }
    let _ = e.tick(t + Duration::from_millis(10));
    let out = e.take_outcomes();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].cause, Some(Cause::Unknown), "{out:#?}");
    assert_eq!(out[0].who, None);
    assert_eq!(out[0].note, Some(Note::Unexplained));
    assert_eq!(out[1].cause, Some(Cause::LinkDown));
    assert_eq!(out[1].who.map(|w| w.pid), Some(900));
}

/// The kprobe/fentry rungs' orders, recorded in QEMU guests.
#[path = "nexthops_hooks_tests.rs"]
mod hooks;

/// After a flush, the nexthops are dumped again. One that vanished from the
/// link that went down is the link's (the kernel says nothing of it); one
/// that vanished otherwise was deleted by a request whose notification is
/// still to be read, and is reported from it, once.
#[test]
fn a_re_read_reports_only_the_nexthops_a_link_action_took() {
    let (mut e, t) = engine();
    let mut causes = FlushCauses::default();
    causes.add(causes::RecentCause {
        cause: Cause::LinkDown,
        who: who(901),
        source: Source::Tracepoint,
        at: t,
        ifindex: Some(2),
    });
    // The dump: 11 and 20 are there, 10 (on v0, ifindex 2) is not.
    let dump = [
        item(0, 0, 0, nh(Op::Add, single(11, "fd09::2", 2))),
        item(0, 0, 0, nh(Op::Add, group(20, &[(10, 1), (11, 3)]))),
    ];
    e.reload_nexthops(NS, &dump, &causes, false);
    let out = e.take_outcomes();
    assert_eq!(
        summary(&out),
        vec![(
            "nexthop Del".into(),
            "id 10 members 0".into(),
            Some(Cause::LinkDown),
            None,
            Some(901)
        )]
    );
    // 11 vanishes from a dump after a flush nothing on its device explains
    // (the deletion of another nexthop): kept for its notification.
    let mut unknown = FlushCauses::default();
    unknown.add(causes::RecentCause {
        cause: Cause::Unknown,
        who: who(902),
        source: Source::Kprobe,
        at: t,
        ifindex: None,
    });
    e.reload_nexthops(NS, &[dump[1].clone()], &unknown, false);
    assert!(e.take_outcomes().is_empty());
    del_request(&mut e, 903, 11, 50, t);
    e.notification(
        NS,
        item(50, 903, 0, nh(Op::Del, single(11, "fd09::2", 2))),
        t,
    );
    let _ = e.tick(t + Duration::from_secs(1));
    let s = summary(&e.take_outcomes());
    assert_eq!(
        s[0],
        (
            "nexthop Del".into(),
            "id 11 members 0".into(),
            None,
            None,
            Some(903)
        ),
        "{s:#?}"
    );
    assert_eq!(
        s.iter().filter(|x| x.0 == "nexthop Del").count(),
        1,
        "{s:#?}"
    );
}
