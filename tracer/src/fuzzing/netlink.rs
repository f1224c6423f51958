//! rtnetlink messages as the tracer decodes them (`netlink::decode`):
//!
//! - `netlink`: a buffer of messages (a copied request, a notification
//!   datagram, a dump part) of any type: routes, rules, links, addresses,
//!   nexthop objects, acks. Every route and rule that the guard's repair
//!   could put back (`netlink::request`), and every nexthop object
//!   (`nexthop_msg::encode`), decodes from its encoding to itself.
//! - `route_msg`: the payload of one route message through the hand-written
//!   hot-path parser (`route_msg::RouteMsg`), checked against
//!   netlink-packet-route's reading of the same bytes whenever the library
//!   accepts them, and the multipath decoder (`nexthops`).
//! - `nexthop_msg`: the payload of one nexthop message (`nexthop_msg`),
//!   encoded again and decoded to itself.
use std::net::IpAddr;

use netlink_packet_core::Parseable;
use netlink_packet_route::{
    RouteNetlinkMessage,
    route::{RouteAddress, RouteAttribute, RouteMessage},
};

use crate::{
    event::{Family, Nexthop, Op, Route, Rule},
    netlink::{
        decode::{DecodeError, NlItem, NlObj, decode_buffer, decode_one},
        nexthop_msg::{self, RTM_DELNEXTHOP, RTM_NEWNEXTHOP},
        nexthops,
        request::{create_exclusive, route_message, rule_message},
        route_msg::{RTM_NEWROUTE, RouteMsg},
    },
};

const NLMSG_HDRLEN: usize = 16;
const NLM_F_REQUEST: u16 = 0x1;

pub fn netlink(data: &[u8]) {
    let (items, errors) = decode_buffer(data);
    for e in &errors {
        let offset = match e {
            DecodeError::Truncated { offset, .. } | DecodeError::Malformed { offset, .. } => {
                *offset
            }
        };
        assert!(offset + NLMSG_HDRLEN <= data.len(), "{e}");
    }
    for item in &items {
        round_trip(item);
    }
}

/// An item decoded from its own encoding, where the tracer has one.
fn round_trip(item: &NlItem) {
    match &item.obj {
        NlObj::Route { route, .. } => route_round_trip(route),
        NlObj::Rule { rule, .. } => rule_round_trip(rule),
        NlObj::Nexthop { op, nexthop } => nexthop_round_trip(*op, nexthop),
        NlObj::Link(_) | NlObj::Addr { .. } | NlObj::Ack { .. } => {}
    }
}

/// The one object in a whole message, decoded.
fn decode_obj(msg: &[u8]) -> NlObj {
    match decode_one(msg) {
        Ok(Some(item)) => item.obj,
        other => panic!("{other:?} from our own message {msg:02x?}"),
    }
}

/// A route the repair can request decodes from that request to itself,
/// as far as the request says it: with a nexthop object, the device and
/// gateway are not sent (the kernel refuses them next to it); with next
/// hops, neither the route's own device and gateway nor the flags a dump
/// shows besides `onlink`.
fn route_round_trip(route: &Route) {
    let Ok(m) = route_message(route) else {
        return;
    };
    let msg = create_exclusive(RouteNetlinkMessage::NewRoute(m), 1);
    let NlObj::Route { op, route: back } = decode_obj(&msg) else {
        panic!("not a route from {msg:02x?}");
    };
    assert_eq!(op, Op::Add);
    let mut want = route.clone();
    if want.nhid.is_some() {
        want.nexthops.clear();
    }
    if want.nhid.is_some() || !want.nexthops.is_empty() {
        want.ifindex = None;
        want.gateway = None;
    }
    for h in &mut want.nexthops {
        h.flags.retain(|f| f == "onlink");
    }
    assert_eq!(back, want, "re-encoded: {msg:02x?}");
}

/// A rule the repair can request decodes from that request to itself; a
/// rule without an action (a deletion by priority) is requested as a
/// table lookup.
fn rule_round_trip(rule: &Rule) {
    let Ok(m) = rule_message(rule) else {
        return;
    };
    let msg = create_exclusive(RouteNetlinkMessage::NewRule(m), 1);
    let NlObj::Rule { op, rule: back } = decode_obj(&msg) else {
        panic!("not a rule from {msg:02x?}");
    };
    assert_eq!(op, Op::Add);
    let mut want = rule.clone();
    want.action.get_or_insert_with(|| "table".into());
    assert_eq!(*back, want, "re-encoded: {msg:02x?}");
}

fn nexthop_round_trip(op: Op, nh: &Nexthop) {
    let msg_type = match op {
        Op::Add => RTM_NEWNEXTHOP,
        Op::Del => RTM_DELNEXTHOP,
    };
    let msg = nexthop_msg::encode(msg_type, 0, 1, nh);
    let NlObj::Nexthop {
        op: back_op,
        nexthop,
    } = decode_obj(&msg)
    else {
        panic!("not a nexthop from {msg:02x?}");
    };
    assert_eq!(
        (back_op, nexthop.as_ref()),
        (op, nh),
        "re-encoded: {msg:02x?}"
    );
}

pub fn nexthop_msg(data: &[u8]) {
    let Ok(nh) = nexthop_msg::parse(data) else {
        return;
    };
    let msg = nexthop_msg::encode(RTM_NEWNEXTHOP, 0, 1, &nh);
    assert_eq!(
        nexthop_msg::parse(&msg[NLMSG_HDRLEN..]).as_ref(),
        Ok(&nh),
        "re-encoded: {msg:02x?}"
    );
    assert_eq!(
        decode_obj(&msg),
        NlObj::Nexthop {
            op: Op::Add,
            nexthop: Box::new(nh)
        }
    );
}

/// A whole message of `msg_type` around `payload`.
fn message(msg_type: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NLMSG_HDRLEN + payload.len());
    out.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&msg_type.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(payload);
    out
}

pub fn route_msg(data: &[u8]) {
    let hops = nexthops::parse(data);
    let Ok(m) = RouteMsg::parse(data) else {
        return;
    };
    if let Ok(lib) = RouteMessage::parse(data) {
        same_as_library(&m, &lib);
    }
    // decode_one reads the same route, with its next hops.
    let msg = message(RTM_NEWROUTE, NLM_F_REQUEST, data);
    match decode_one(&msg) {
        Ok(Some(NlItem {
            obj: NlObj::Route { op, route },
            ..
        })) => {
            assert_eq!(op, Op::Add);
            let mut want = m.to_route();
            if m.multipath {
                want.nexthops = hops.expect("decode_one read the next hops");
            }
            assert_eq!(route, want);
        }
        Ok(other) => panic!("a route message decoded as {other:?}"),
        Err(e) => assert!(m.multipath && hops.is_err(), "{e}"),
    }
}

/// The facts the hot path reads, as netlink-packet-route reads them: the
/// last of each attribute counts, as in the kernel.
fn same_as_library(m: &RouteMsg, lib: &RouteMessage) {
    let h = &lib.header;
    assert_eq!(m.family, u8::from(h.address_family));
    assert_eq!(m.dst_len, h.destination_prefix_length);
    assert_eq!(
        (m.protocol, m.scope, m.rtype),
        (u8::from(h.protocol), u8::from(h.scope), u8::from(h.kind))
    );
    let last = |f: &dyn Fn(&RouteAttribute) -> Option<Option<IpAddr>>| {
        lib.attributes.iter().rev().find_map(f)
    };
    let ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    };
    let table = lib.attributes.iter().rev().find_map(|a| match a {
        RouteAttribute::Table(t) => Some(*t),
        _ => None,
    });
    assert_eq!(m.table, table.unwrap_or(u32::from(h.table)));
    let u32_attr = |f: fn(&RouteAttribute) -> Option<u32>| lib.attributes.iter().rev().find_map(f);
    let oif = u32_attr(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    });
    assert_eq!(m.oif, oif.filter(|i| *i != 0));
    let metric = u32_attr(|a| match a {
        RouteAttribute::Priority(p) => Some(*p),
        _ => None,
    });
    assert_eq!(m.metric, metric);
    let nhid = u32_attr(|a| match a {
        RouteAttribute::NhId(i) => Some(*i),
        _ => None,
    });
    assert_eq!(m.nhid, nhid);
    if Family::from_af(m.family).is_some() {
        let dst = last(&|a| match a {
            RouteAttribute::Destination(d) => Some(ip(d)),
            _ => None,
        });
        assert_eq!(m.dst_addr(), dst.flatten());
        // netlink-packet-route reads RTA_VIA's family as one byte, where
        // the kernel (and the hot path) read the two of `rtvia_family`:
        // with RTA_VIA, the library is no reference for the gateway.
        let via = lib
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Via(_)));
        if !via {
            let gateway = last(&|a| match a {
                RouteAttribute::Gateway(g) => Some(ip(g)),
                _ => None,
            });
            assert_eq!(m.gateway, gateway.flatten());
        }
    }
    let multipath = lib.attributes.iter().rev().find_map(|a| match a {
        RouteAttribute::MultiPath(hops) => Some(!hops.is_empty()),
        _ => None,
    });
    assert_eq!(m.multipath, multipath.unwrap_or(false));
}
