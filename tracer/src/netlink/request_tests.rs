//! The repair requests: decoded back, they are the object they were built
//! from; and against the kernel (root, a namespace of its own), every type
//! of route and rule, IPv4 and IPv6, deleted and put back from its removal
//! notification, dumps as it did before.
use std::time::Duration;

use super::*;
use crate::{
    event::Op,
    netlink::{
        apply::{Applied, Wanted, put_back},
        decode::{NlItem, NlObj, decode_one},
        socket::{
            DumpKind, Received, RecvBuffers, dump, dump_socket, in_netns, notification_socket,
            receive,
        },
    },
    test_util::{Netns, root_or_skip},
};

fn decoded(inner: RouteNetlinkMessage) -> NlObj {
    let bytes = create_exclusive(inner, 7);
    let item = decode_one(&bytes).unwrap().unwrap();
    assert_eq!(item.seq, 7);
    assert_eq!(
        item.flags,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    );
    item.obj
}

#[test]
fn a_route_request_decodes_to_the_route() {
    let r = Route {
        family: Some(Family::Inet),
        table: Some(1000),
        rtype: Some("unicast".into()),
        dst: Some("10.1.0.0/16".into()),
        gateway: Some("192.0.2.1".into()),
        ifindex: Some(4),
        metric: Some(7),
        protocol: Some("static".into()),
        scope: Some("global".into()),
        ..Route::default()
    };
    let NlObj::Route { op, route } =
        decoded(RouteNetlinkMessage::NewRoute(route_message(&r).unwrap()))
    else {
        panic!("not a route");
    };
    assert_eq!(op, Op::Add);
    assert_eq!(route, r);
}

/// A length of 0 with an address that has bits names the address (the
/// request named the default route; found by the netlink fuzz target).
#[test]
fn a_zero_length_prefix_with_bits_keeps_its_address() {
    for dst in ["10.1.2.3/0", "::19:1919/0"] {
        let r = Route {
            family: Some(if dst.contains(':') {
                Family::Inet6
            } else {
                Family::Inet
            }),
            table: Some(254),
            rtype: Some("unicast".into()),
            dst: Some(dst.into()),
            protocol: Some("boot".into()),
            scope: Some("global".into()),
            ..Route::default()
        };
        let NlObj::Route { route, .. } =
            decoded(RouteNetlinkMessage::NewRoute(route_message(&r).unwrap()))
        else {
            panic!("not a route");
        };
        assert_eq!(route, r);
    }
}

#[test]
fn a_rule_request_decodes_to_the_rule() {
    let r = Rule {
        family: Some(Family::Inet6),
        priority: Some(5270),
        table: Some(52),
        action: Some("table".into()),
        src: Some("2001:db8::/32".into()),
        fwmark: Some(0x80000),
        fwmask: Some(0xff0000),
        iif: Some("lo".into()),
        uid_range: Some("100-200".into()),
        ipproto: Some(6),
        dport: Some("443".into()),
        sport: Some("1000-2000".into()),
        invert: true,
        protocol: Some("static".into()),
        ..Rule::default()
    };
    let NlObj::Rule { op, rule } = decoded(RouteNetlinkMessage::NewRule(rule_message(&r).unwrap()))
    else {
        panic!("not a rule");
    };
    assert_eq!(op, Op::Add);
    assert_eq!(*rule, r);
}

#[test]
fn a_route_with_a_nexthop_object_sends_only_its_id() {
    let r = Route {
        family: Some(Family::Inet),
        table: Some(52),
        dst: Some("10.7.0.0/24".into()),
        gateway: Some("192.0.2.1".into()),
        ifindex: Some(3),
        nhid: Some(10),
        ..Route::default()
    };
    let m = route_message(&r).unwrap();
    assert!(m.attributes.contains(&RouteAttribute::NhId(10)));
    assert!(
        !m.attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Oif(_) | RouteAttribute::Gateway(_)))
    );
}

#[test]
fn bad_objects_are_typed_errors() {
    let r = Route {
        family: Some(Family::Inet),
        table: Some(52),
        dst: Some("2001:db8::/32".into()),
        ..Route::default()
    };
    assert!(matches!(route_message(&r), Err(BuildError::Prefix { .. })));
    let r = Route {
        family: Some(Family::Inet),
        table: Some(52),
        dst: Some("10.0.0.0/8".into()),
        dev: Some("gone0".into()),
        ..Route::default()
    };
    assert_eq!(
        route_message(&r).unwrap_err(),
        BuildError::NoIndex("gone0".into())
    );
}

/// The routes of tables 52 and 1000 and the rules between 100 and 200,
/// devices named, sorted, as the kernel dumps them.
fn snapshot(ns: &std::fs::File) -> Vec<String> {
    let s = dump_socket(Some(ns)).unwrap();
    let links: std::collections::HashMap<u32, String> = dump(&s, DumpKind::Links, 1)
        .unwrap()
        .into_iter()
        .filter_map(|i| match i.obj {
            NlObj::Link(l) => Some((l.ifindex, l.name?)),
            _ => None,
        })
        .collect();
    let mut out: Vec<String> = dump(&s, DumpKind::Routes, 2)
        .unwrap()
        .into_iter()
        .chain(dump(&s, DumpKind::Rules, 3).unwrap())
        .filter_map(|i| ours(i, &links))
        .collect();
    out.sort();
    out
}

fn ours(i: NlItem, links: &std::collections::HashMap<u32, String>) -> Option<String> {
    match i.obj {
        NlObj::Route { mut route, .. } if matches!(route.table, Some(52 | 1000)) => {
            route.name_devs(|i| links.get(&i).cloned());
            Some(format!("{route:?}"))
        }
        NlObj::Rule { rule, .. } if rule.priority.is_some_and(|p| (100..200).contains(&p)) => {
            Some(format!("{rule:?}"))
        }
        _ => None,
    }
}

/// Every route and rule type, IPv4 and IPv6.
const ROUTES: &[&str] = &[
    "route add 10.1.0.0/24 dev d0 table 52",
    "route add 10.2.0.0/24 via 10.0.0.2 dev d0 table 52 metric 5 proto static",
    "route add throw 192.168.1.0/24 table 52",
    "route add blackhole 10.3.0.0/24 table 52",
    "route add unreachable 10.4.0.0/24 table 1000",
    "route add prohibit 10.5.0.0/24 table 52",
    "route add local 10.0.0.9 dev d0 table 52",
    "route add 10.6.0.0/24 table 52 nexthop via 10.0.0.2 dev d0 weight 1 nexthop via 10.0.1.2 dev d1 weight 3",
    "route add 10.7.0.0/24 nhid 10 table 52",
    "route add default dev d0 table 52 scope link",
    "-6 route add 2001:db8:1::/64 dev d0 table 52",
    "-6 route add 2001:db8:2::/64 via 2001:db8::2 dev d0 table 52 metric 7",
    "-6 route add throw 2001:db8:3::/64 table 52",
    "-6 route add blackhole 2001:db8:4::/64 table 1000",
    "-6 route add unreachable 2001:db8:5::/64 table 52",
    "-6 route add prohibit 2001:db8:6::/64 table 52",
    "-6 route add default dev d0 table 52",
];
const RULES: &[&str] = &[
    "rule add pref 100 lookup 52",
    "rule add pref 101 fwmark 0x80000/0xff0000 lookup main",
    "rule add pref 102 from 10.9.0.0/16 to 10.8.0.0/16 tos 0x10 lookup 1000",
    "rule add pref 103 iif d0 oif d1 unreachable",
    "rule add pref 104 blackhole",
    "rule add pref 105 prohibit",
    "rule add pref 106 goto 110",
    "rule add pref 107 nop",
    "rule add pref 108 lookup main suppress_prefixlength 0",
    "rule add pref 109 uidrange 100-200 ipproto tcp sport 1000-2000 dport 443 lookup 52",
    "rule add pref 110 not from 10.9.0.0/16 lookup 52 proto static",
    "-6 rule add pref 120 from 2001:db8::/32 lookup 52",
    "-6 rule add pref 121 fwmark 0x1 unreachable",
];

/// The removals of everything `ours`, as the kernel notified them.
fn removals(sock: &netlink_sys::Socket) -> Vec<NlItem> {
    let mut bufs = RecvBuffers::default();
    let mut got = Vec::new();
    while let Received::Items { items, .. } = receive(sock, &mut bufs, 300, 4096).unwrap() {
        got.extend(items.into_iter().filter(|i| {
            matches!(
                i.obj,
                NlObj::Route { op: Op::Del, .. } | NlObj::Rule { op: Op::Del, .. }
            )
        }));
    }
    got
}

#[test]
fn every_type_is_put_back_as_it_was() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new("req");
    for l in [
        "link add d0 type veth peer name d0p",
        "link add d1 type veth peer name d1p",
        "link set d0p up",
        "link set d1p up",
        "link set d0 up",
        "link set d1 up",
        "addr add 10.0.0.1/24 dev d0",
        "addr add 10.0.1.1/24 dev d1",
        "-6 addr add 2001:db8::1/64 dev d0 nodad",
        "nexthop add id 10 via 10.0.0.2 dev d0",
    ] {
        ns.ip(l);
    }
    ROUTES.iter().chain(RULES).for_each(|c| ns.ip(c));
    let f = ns.file();
    let before = snapshot(&f);
    assert_eq!(before.len(), ROUTES.len() + RULES.len(), "{before:#?}");
    let notes = in_netns(Some(&f), notification_socket).unwrap();
    for c in ROUTES.iter().chain(RULES) {
        ns.ip(&c.replacen(" add ", " del ", 1));
    }
    std::thread::sleep(Duration::from_millis(100));
    let gone = removals(&notes);
    assert_eq!(snapshot(&f), Vec::<String>::new());
    let mut seq = 100;
    for item in &gone {
        seq += 1;
        let applied = match &item.obj {
            NlObj::Route { route, .. } => {
                let mut r = route.clone();
                // The event model names devices; the request looks them up.
                let names = snapshot_names(&f);
                r.name_devs(|i| names.get(&i).cloned());
                put_back(Some(&f), Wanted::Route(&r), seq, true, &|_| false).unwrap()
            }
            NlObj::Rule { rule, .. } => {
                put_back(Some(&f), Wanted::Rule(rule), seq, true, &|_| false).unwrap()
            }
            _ => continue,
        };
        assert_eq!(applied, Applied::Sent { seq, error: 0 }, "{item:?}");
    }
    assert_eq!(snapshot(&f), before);
}

fn snapshot_names(f: &std::fs::File) -> std::collections::HashMap<u32, String> {
    let s = dump_socket(Some(f)).unwrap();
    dump(&s, DumpKind::Links, 9)
        .unwrap()
        .into_iter()
        .filter_map(|i| match i.obj {
            NlObj::Link(l) => Some((l.ifindex, l.name?)),
            _ => None,
        })
        .collect()
}
