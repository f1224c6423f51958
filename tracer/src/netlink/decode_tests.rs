use std::net::Ipv4Addr;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType},
    rule::{RuleAction, RuleAttribute, RuleMessage},
};

use super::*;

fn wire(seq: u32, msg: RouteNetlinkMessage) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.sequence_number = seq;
    header.flags = 0x1 | 0x4; // NLM_F_REQUEST | NLM_F_ACK
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    m.finalize();
    let mut buf = vec![0u8; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

fn throw_route() -> RouteMessage {
    let mut r = RouteMessage::default();
    r.header.address_family = AddressFamily::Inet;
    r.header.destination_prefix_length = 24;
    r.header.table = 52;
    r.header.kind = RouteType::Throw;
    r.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(
            Ipv4Addr::new(192, 168, 1, 0),
        )));
    r.attributes.push(RouteAttribute::Table(52));
    r
}

#[test]
fn decodes_a_throw_route_deletion() {
    let buf = wire(7, RouteNetlinkMessage::DelRoute(throw_route()));
    let (items, errors) = decode_buffer(&buf);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].seq, 7);
    let NlObj::Route { op, route } = &items[0].obj else {
        panic!("not a route: {:?}", items[0])
    };
    assert_eq!(*op, Op::Del);
    assert_eq!(route.family, Some(Family::Inet));
    assert_eq!(route.table, Some(52));
    assert_eq!(route.rtype.as_deref(), Some("throw"));
    assert_eq!(route.dst.as_deref(), Some("192.168.1.0/24"));
    assert_eq!(route.gateway, None);
}

#[test]
fn default_route_prefix_is_spelled_out() {
    let mut r = RouteMessage::default();
    r.header.address_family = AddressFamily::Inet6;
    r.header.table = 254;
    r.header.kind = RouteType::Unicast;
    r.attributes.push(RouteAttribute::Oif(3));
    let (items, _) = decode_buffer(&wire(1, RouteNetlinkMessage::NewRoute(r)));
    let NlObj::Route { route, .. } = &items[0].obj else {
        panic!()
    };
    assert_eq!(route.dst.as_deref(), Some("::/0"));
    assert_eq!(route.ifindex, Some(3));
    assert_eq!(route.family, Some(Family::Inet6));
}

/// A prefix length without RTA_DST is the zero address at that length, as
/// the kernel reads it (the decoder said no destination at all; found by
/// the fuzz target, whose repair request then named the default route).
#[test]
fn a_prefix_without_rta_dst_is_the_zero_address() {
    for (family, len, want) in [
        (AddressFamily::Inet, 8, "0.0.0.0/8"),
        (AddressFamily::Inet6, 64, "::/64"),
    ] {
        let mut r = RouteMessage::default();
        r.header.address_family = family;
        r.header.destination_prefix_length = len;
        r.header.table = 254;
        r.header.kind = RouteType::Unicast;
        let (items, _) = decode_buffer(&wire(1, RouteNetlinkMessage::NewRoute(r)));
        let NlObj::Route { route, .. } = &items[0].obj else {
            panic!()
        };
        assert_eq!(route.dst.as_deref(), Some(want));
    }
}

#[test]
fn decodes_a_rule_with_selectors() {
    let mut r = RuleMessage::default();
    r.header.family = AddressFamily::Inet;
    r.header.action = RuleAction::ToTable;
    r.header.table = 52;
    r.attributes.push(RuleAttribute::Priority(5270));
    r.attributes.push(RuleAttribute::Table(52));
    r.attributes.push(RuleAttribute::FwMark(0x80000));
    r.attributes.push(RuleAttribute::FwMask(0xff0000));
    r.attributes
        .push(RuleAttribute::Iifname("tailscale0".into()));
    let (items, errors) = decode_buffer(&wire(9, RouteNetlinkMessage::DelRule(r)));
    assert!(errors.is_empty());
    let NlObj::Rule { op, rule } = &items[0].obj else {
        panic!()
    };
    assert_eq!(*op, Op::Del);
    assert_eq!(rule.priority, Some(5270));
    assert_eq!(rule.table, Some(52));
    assert_eq!(rule.action.as_deref(), Some("table"));
    assert_eq!(rule.fwmark, Some(0x80000));
    assert_eq!(rule.fwmask, Some(0xff0000));
    assert_eq!(rule.iif.as_deref(), Some("tailscale0"));
}

#[test]
fn batch_with_truncated_tail_keeps_complete_messages() {
    let one = wire(1, RouteNetlinkMessage::DelRoute(throw_route()));
    let mut buf = one.clone();
    buf.extend_from_slice(&one);
    buf.extend_from_slice(&one[..one.len() - 4]);
    let (items, errors) = decode_buffer(&buf);
    assert_eq!(items.len(), 2);
    assert!(
        matches!(errors.as_slice(), [DecodeError::Truncated { .. }]),
        "{errors:?}"
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut buf = vec![0xffu8; 64];
    buf[0..4].copy_from_slice(&8u32.to_ne_bytes());
    let (items, errors) = decode_buffer(&buf);
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1);
    let (items, errors) = decode_buffer(&[1, 2, 3]);
    assert!(items.is_empty() && errors.is_empty());
}

/// A whole netlink message: header (type, flags, seq 7) and payload.
fn message(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&7u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m
}

/// `ip rule add pref 3006 from all lookup 52` as iproute2 6.1 sends it
/// (captured with strace): "from all" is a zero-length FRA_SRC, which
/// netlink-packet-route alone rejects.
#[test]
fn rule_from_all_has_a_zero_length_source_and_decodes() {
    let payload = b"\x02\x00\x00\x00\x34\x00\x00\x01\x00\x00\x00\x00\x08\x00\x06\x00\xbe\x0b\x00\x00\x04\x00\x02\x00";
    let (items, errors) = decode_buffer(&message(32, 0x605, payload));
    assert!(errors.is_empty(), "{errors:?}");
    let [item] = &items[..] else {
        panic!("{items:?}")
    };
    let NlObj::Rule { op, rule } = &item.obj else {
        panic!("{item:?}")
    };
    assert_eq!(*op, Op::Add);
    assert_eq!(rule.priority, Some(3006));
    assert_eq!(rule.table, Some(52));
    assert_eq!(rule.src, None, "from all is no source selector");
    assert_eq!(item.seq, 7);
}

/// An explicit `from 0.0.0.0/0` (four zero bytes, src_len 0) is "all" too.
#[test]
fn rule_with_zero_prefix_length_source_is_all() {
    let payload = b"\x02\x00\x00\x00\x34\x00\x00\x01\x00\x00\x00\x00\x08\x00\x06\x00\xbe\x0b\x00\x00\x08\x00\x02\x00\x00\x00\x00\x00";
    let (items, errors) = decode_buffer(&message(33, 0x5, payload));
    assert!(errors.is_empty(), "{errors:?}");
    let NlObj::Rule { op, rule } = &items[0].obj else {
        panic!()
    };
    assert_eq!((*op, rule.src.as_deref()), (Op::Del, None));
}

/// A rule attribute the library refuses is skipped; the rule is kept.
#[test]
fn a_bad_rule_attribute_does_not_lose_the_rule() {
    // src_len 24 with a 3-byte FRA_SRC (the kernel would refuse it: EINVAL).
    let payload = b"\x02\x00\x18\x00\x34\x00\x00\x01\x00\x00\x00\x00\x08\x00\x06\x00\xbe\x0b\x00\x00\x07\x00\x02\x00\x0a\x00\x00\x00";
    let (items, errors) = decode_buffer(&message(32, 0x605, payload));
    assert!(errors.is_empty(), "{errors:?}");
    let NlObj::Rule { rule, .. } = &items[0].obj else {
        panic!()
    };
    assert_eq!((rule.priority, rule.src.as_deref()), (Some(3006), None));
}

/// `ip route add 10.5.0.0/24 nexthop via 192.0.2.2 weight 1 nexthop via
/// 192.0.2.3 weight 2`, as iproute2 6.1 sends it (captured with strace).
#[test]
fn multipath_route_carries_its_next_hops() {
    let payload = b"\x02\x18\x00\x00\xfe\x03\x00\x01\x00\x00\x00\x00\x08\x00\x01\x00\x0a\x05\x00\x00\x24\x00\x09\x00\x10\x00\x00\x00\x00\x00\x00\x00\x08\x00\x05\x00\xc0\x00\x02\x02\x10\x00\x00\x01\x00\x00\x00\x00\x08\x00\x05\x00\xc0\x00\x02\x03";
    let (items, errors) = decode_buffer(&message(24, 0x605, payload));
    assert!(errors.is_empty(), "{errors:?}");
    let NlObj::Route { op, route } = &items[0].obj else {
        panic!()
    };
    assert_eq!(*op, Op::Add);
    assert_eq!(route.dst.as_deref(), Some("10.5.0.0/24"));
    assert_eq!(route.gateway, None);
    let hops: Vec<(Option<&str>, u16)> = route
        .nexthops
        .iter()
        .map(|h| (h.gateway.as_deref(), h.weight))
        .collect();
    assert_eq!(hops, [(Some("192.0.2.2"), 1), (Some("192.0.2.3"), 2)]);
}

#[test]
fn an_unpadded_last_route_attribute_is_not_a_panic() {
    // rtmsg, then RTA_PRIORITY and a 5-byte attribute the message ends in
    // without its padding (the kernel accepts it).
    let mut p = vec![2, 24, 0, 0, 52, 4, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(&[8, 0, 6, 0, 5, 0, 0, 0, 5, 0, 200, 0, 1]);
    let r = RouteMsg::parse(&p).unwrap();
    assert_eq!(r.metric, Some(5));
}

#[test]
fn an_unpadded_last_message_is_not_a_panic() {
    let mut m = message(RTM_NEWROUTE, 0, &[2, 0, 0, 0, 254, 4, 0, 1, 0, 0, 0, 0]);
    m.push(0);
    m[0] += 1;
    let (items, errors) = decode_buffer(&m);
    assert_eq!((items.len(), errors), (1, vec![]));
}

/// The kernel leaves RTA_PRIORITY out of an IPv4 route of metric 0: what
/// it states (no NLM_F_REQUEST) has metric 0, a request names none, and an
/// IPv6 route keeps what its message says.
#[test]
fn an_ipv4_metric_the_kernel_leaves_out_is_zero() {
    let metric = |flags: u16, family: AddressFamily| {
        let mut r = throw_route();
        r.header.address_family = family;
        if family == AddressFamily::Inet6 {
            r.attributes.clear();
        }
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut m = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)),
        );
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        let (items, errors) = decode_buffer(&buf);
        assert!(errors.is_empty(), "{errors:?}");
        let NlObj::Route { route, .. } = &items[0].obj else {
            panic!("not a route: {:?}", items[0])
        };
        route.metric
    };
    assert_eq!(metric(0, AddressFamily::Inet), Some(0), "a notification");
    assert_eq!(metric(0x2, AddressFamily::Inet), Some(0), "a dump's part");
    assert_eq!(metric(0x1 | 0x400, AddressFamily::Inet), None, "a request");
    assert_eq!(metric(0, AddressFamily::Inet6), None, "IPv6 states its own");
}

/// One netlink attribute, padded.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    a.resize((a.len() + 3) & !3, 0);
    a
}

/// `ip link add bu0 type bareudp ...` whose IFLA_BAREUDP_SRCPORT_MIN has no
/// bytes (what the ring_record fuzz target found: netlink-packet-route 0.34
/// panics on it). The link is read from its header and IFLA_IFNAME; its
/// kind's data is not parsed.
#[test]
fn a_link_whose_kind_data_is_malformed_is_still_read() {
    let mut ifinfo = vec![0u8; 16];
    ifinfo[4..8].copy_from_slice(&9u32.to_ne_bytes()); // ifi_index
    ifinfo[8..12].copy_from_slice(&1u32.to_ne_bytes()); // IFF_UP
    ifinfo[12..16].copy_from_slice(&1u32.to_ne_bytes()); // change: IFF_UP
    let data = nla(0x8000 | 2, &nla(3, &[])); // IFLA_INFO_DATA { SRCPORT_MIN }
    let info = nla(0x8000 | 18, &[nla(1, b"bareudp\0"), data].concat()); // IFLA_LINKINFO
    let payload = [ifinfo, nla(3, b"bu0\0"), info].concat();
    let (items, errors) = decode_buffer(&message(16, 0x1 | 0x400, &payload));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        items[0].obj,
        NlObj::Link(LinkChange {
            deleted: false,
            ifindex: 9,
            name: Some("bu0".into()),
            up: Some(true),
        })
    );
    // The same as a deletion, and a link message too short for its header.
    let (items, _) = decode_buffer(&message(17, 0x1, &payload));
    assert!(matches!(&items[0].obj, NlObj::Link(l) if l.deleted && l.ifindex == 9));
    let (items, errors) = decode_buffer(&message(16, 0x1, &[0u8; 8]));
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1, "{errors:?}");
}
