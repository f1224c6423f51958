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
