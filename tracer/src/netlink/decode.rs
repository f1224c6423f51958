//! Decoding of rtnetlink buffers (requests read by the eBPF programs, and
//! notifications and dumps read from our own sockets) into the tracer's
//! model, with netlink-packet-route doing the wire-format parsing (route
//! and nexthop messages are read by hand: `route_msg`, `nexthop_msg`).
use super::error::MsgError;
use netlink_packet_core::{
    NLA_TYPE_MASK, NetlinkMessage, NetlinkPayload, NlasIterator, ParseableParametrized,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
    link::{LinkAttribute, LinkFlags, LinkHeader},
    rule::{RuleAttribute, RuleFlags, RuleMessage},
};

use super::{
    names, nexthop_msg, nexthops,
    route_msg::{RTM_DELROUTE, RTM_NEWROUTE, RouteMsg},
    rule_msg,
};

/// rtnetlink message types of rules.
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
/// Message types of links and addresses, and of errors (uapi
/// rtnetlink.h, netlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLMSG_ERROR: u16 = 2;
/// struct ifinfomsg, and the attribute naming a link.
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
/// nlmsg_flags of a request (uapi netlink.h).
const NLM_F_REQUEST: u16 = 0x1;
use crate::event::{Family, Op, Route, Rule, prefix};

/// One decoded rtnetlink message.
#[derive(Clone, Debug, PartialEq)]
pub struct NlItem {
    pub seq: u32,
    /// nlmsg_pid: 0 in most requests; the requester's port id in notifications.
    pub portid: u32,
    pub flags: u16,
    pub obj: NlObj,
}

/// What a message is about.
// Routes are not boxed: a flush decodes a million of them (see
// `correlate::Object`).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum NlObj {
    Route {
        op: Op,
        route: Route,
    },
    /// Boxed, as in `correlate::Object`: a rule is several times larger
    /// than a route.
    Rule {
        op: Op,
        rule: Box<Rule>,
    },
    /// RTM_NEWNEXTHOP/RTM_DELNEXTHOP (`nexthop_msg`): a request's or a
    /// notification's nexthop object. A new nexthop that takes the place of
    /// one with its id says so by NLM_F_REPLACE in a request only; the
    /// notification does not.
    Nexthop {
        op: Op,
        nexthop: Box<crate::event::Nexthop>,
    },
    Link(LinkChange),
    Addr {
        op: Op,
        ifindex: u32,
        addr: Option<String>,
    },
    /// NLMSG_ERROR: 0 for an ack, else a negative errno; with the answered
    /// request's sequence number.
    Ack {
        error: i32,
        seq: u32,
    },
}

/// A link message: RTM_NEWLINK/SETLINK/DELLINK.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkChange {
    pub deleted: bool,
    pub ifindex: u32,
    pub name: Option<String>,
    /// IFF_UP as the message sets it, when the message changes or reports it.
    pub up: Option<bool>,
}

/// Why part of a buffer could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("netlink message at byte {offset} is truncated ({len} bytes claimed, {left} left)")]
    Truncated {
        offset: usize,
        len: usize,
        left: usize,
    },
    #[error("netlink message at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: MsgError },
}

const NLMSG_HDRLEN: usize = 16;

/// Decode every complete message in `buf`. Messages the tracer does not
/// report on are skipped; a truncated tail (a bulk request longer than the
/// copied part) ends the walk with an error.
pub fn decode_buffer(buf: &[u8]) -> (Vec<NlItem>, Vec<DecodeError>) {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut off = 0usize;
    while buf.len() - off >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN {
            errors.push(DecodeError::Malformed {
                offset: off,
                reason: MsgError::ShortHeader(len),
            });
            break;
        }
        if len > buf.len() - off {
            errors.push(DecodeError::Truncated {
                offset: off,
                len,
                left: buf.len() - off,
            });
            break;
        }
        match decode_one(&buf[off..off + len]) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {}
            Err(reason) => errors.push(DecodeError::Malformed {
                offset: off,
                reason,
            }),
        }
        // The last message's padding may be missing.
        off = (off + ((len + 3) & !3)).min(buf.len());
    }
    (items, errors)
}

/// Decode one message; Ok(None) for message types the tracer ignores.
pub fn decode_one(msg: &[u8]) -> Result<Option<NlItem>, MsgError> {
    let item = |obj| NlItem {
        seq: header_u32(msg, 8),
        portid: header_u32(msg, 12),
        flags: u16::from_ne_bytes([msg[6], msg[7]]),
        obj,
    };
    if let Some((op, r)) = route_message(msg)? {
        let multipath = r.multipath;
        let mut route = r.to_route();
        // The kernel leaves RTA_PRIORITY out of the IPv4 routes it states
        // (notifications, dumps) whose metric is 0. A request without it
        // names no metric, and only requests carry NLM_F_REQUEST (the
        // kernel ignores a message without it).
        let from_kernel = u16::from_ne_bytes([msg[6], msg[7]]) & NLM_F_REQUEST == 0;
        if from_kernel && route.family == Some(Family::Inet) && route.metric.is_none() {
            route.metric = Some(0);
        }
        if multipath {
            route.nexthops = nexthops::parse(&msg[NLMSG_HDRLEN..])?;
        }
        return Ok(Some(item(NlObj::Route { op, route })));
    }
    if msg.len() >= NLMSG_HDRLEN {
        let kind = u16::from_ne_bytes([msg[4], msg[5]]);
        let op = match kind {
            nexthop_msg::RTM_NEWNEXTHOP => Some(Op::Add),
            nexthop_msg::RTM_DELNEXTHOP => Some(Op::Del),
            nexthop_msg::RTM_GETNEXTHOP => return Ok(None),
            _ => None,
        };
        if let Some(op) = op {
            let nexthop = Box::new(nexthop_msg::parse(&msg[NLMSG_HDRLEN..])?);
            return Ok(Some(item(NlObj::Nexthop { op, nexthop })));
        }
        let op = match kind {
            RTM_NEWRULE => Some(Op::Add),
            RTM_DELRULE => Some(Op::Del),
            _ => None,
        };
        if let Some(op) = op {
            let d = rule_msg::parse(&msg[NLMSG_HDRLEN..])?;
            if !d.skipped.is_empty() {
                log::warn!(
                    "rule message: skipped what could not be decoded: {}",
                    d.skipped.join("; ")
                );
            }
            let rule = Box::new(rule(&d.msg));
            return Ok(Some(item(NlObj::Rule { op, rule })));
        }
        match kind {
            RTM_NEWLINK | RTM_SETLINK | RTM_DELLINK => {
                let l = link(&msg[NLMSG_HDRLEN..], kind == RTM_DELLINK)?;
                return Ok(Some(item(NlObj::Link(l))));
            }
            RTM_NEWADDR | RTM_DELADDR | NLMSG_ERROR => {}
            // Nothing the tracer reports on: not parsed at all.
            _ => return Ok(None),
        }
    }
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg)
        .map_err(|e| MsgError::Rtnetlink(e.to_string()))?;
    let h = m.header;
    let obj = match m.payload {
        NetlinkPayload::InnerMessage(inner) => match inner {
            RouteNetlinkMessage::NewAddress(a) => Some(addr(&a, Op::Add)),
            RouteNetlinkMessage::DelAddress(a) => Some(addr(&a, Op::Del)),
            _ => None,
        },
        NetlinkPayload::Error(e) => Some(NlObj::Ack {
            error: e.code.map(|c| c.get()).unwrap_or(0),
            seq: e
                .header
                .get(8..12)
                .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
                .unwrap_or(0),
        }),
        _ => None,
    };
    Ok(obj.map(|obj| NlItem {
        seq: h.sequence_number,
        portid: h.port_number,
        flags: h.flags,
        obj,
    }))
}

fn header_u32(msg: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(msg[off..off + 4].try_into().expect("4 bytes"))
}

/// A route message (`msg` is one whole netlink message), read without
/// netlink-packet-route: one arrives per route in a flush.
pub fn route_message(msg: &[u8]) -> Result<Option<(Op, RouteMsg)>, MsgError> {
    if msg.len() < NLMSG_HDRLEN {
        return Ok(None);
    }
    let op = match u16::from_ne_bytes([msg[4], msg[5]]) {
        RTM_NEWROUTE => Op::Add,
        RTM_DELROUTE => Op::Del,
        _ => return Ok(None),
    };
    Ok(Some((op, RouteMsg::parse(&msg[NLMSG_HDRLEN..])?)))
}

fn family(af: AddressFamily) -> Option<Family> {
    Family::from_af(u8::from(af))
}

/// The rule a RuleMessage describes.
pub fn rule(m: &RuleMessage) -> Rule {
    let mut r = Rule {
        family: family(m.header.family),
        table: (m.header.table != 0).then_some(u32::from(m.header.table)),
        action: names::rule_action(u8::from(m.header.action)),
        tos: (m.header.tos != 0).then_some(m.header.tos),
        invert: m.header.flags.contains(RuleFlags::Invert),
        ..Rule::default()
    };
    for a in &m.attributes {
        match a {
            // A zero length means "all", as the kernel reads it.
            RuleAttribute::Destination(d) if m.header.dst_len > 0 => {
                r.dst = Some(prefix(*d, m.header.dst_len))
            }
            RuleAttribute::Source(s) if m.header.src_len > 0 => {
                r.src = Some(prefix(*s, m.header.src_len))
            }
            RuleAttribute::Iifname(n) => r.iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => r.oif = Some(n.clone()),
            RuleAttribute::Goto(g) => r.goto = Some(*g),
            RuleAttribute::Priority(p) => r.priority = Some(*p),
            RuleAttribute::FwMark(v) => r.fwmark = Some(*v),
            RuleAttribute::FwMask(v) => r.fwmask = Some(*v),
            RuleAttribute::Table(t) => r.table = Some(*t),
            RuleAttribute::SuppressPrefixLen(v) => {
                r.suppress_prefixlen = (*v != u32::MAX).then_some(*v)
            }
            RuleAttribute::UidRange(u) => r.uid_range = Some(format!("{}-{}", u.start, u.end)),
            RuleAttribute::IpProtocol(p) => r.ipproto = Some(u8::from(*p)),
            RuleAttribute::SourcePortRange(p) => r.sport = Some(port_range(p.start, p.end)),
            RuleAttribute::DestinationPortRange(p) => r.dport = Some(port_range(p.start, p.end)),
            RuleAttribute::Protocol(p) => {
                r.protocol = Some(names::protocol(u8::from(*p)).into_owned())
            }
            _ => {}
        }
    }
    // A rule with no table of its own in the request ("ip rule del pref N")
    // keeps table None rather than the header's 0.
    if r.action.as_deref() != Some("table") && r.table == Some(0) {
        r.table = None;
    }
    r
}

fn port_range(start: u16, end: u16) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start}-{end}")
    }
}

/// A link message's payload (what follows the netlink header): its
/// ifinfomsg and its IFLA_IFNAME, read with netlink-packet-route's header
/// and attribute parsers. Its other attributes are not parsed: the crate's
/// parsers of IFLA_LINKINFO panic on some malformed data (0.34's bareudp
/// copies IFLA_BAREUDP_SRCPORT_MIN into 2 bytes whatever its length; found
/// by the ring_record fuzz target), and a request's copy is another
/// process's memory.
fn link(payload: &[u8], deleted: bool) -> Result<LinkChange, MsgError> {
    let header = LinkHeader::parse(payload).map_err(|e| MsgError::Rtnetlink(e.to_string()))?;
    let mut name = None;
    for nla in NlasIterator::new(payload.get(IFINFOMSG_LEN..).unwrap_or_default()) {
        let nla = nla.map_err(|e| MsgError::Rtnetlink(format!("link attribute: {e}")))?;
        if nla.kind() & NLA_TYPE_MASK != IFLA_IFNAME {
            continue;
        }
        match LinkAttribute::parse_with_param(&nla, header.interface_family) {
            Ok(LinkAttribute::IfName(n)) => name = Some(n),
            Ok(_) => {}
            Err(e) => return Err(MsgError::Rtnetlink(e.to_string())),
        }
    }
    // In a request, IFF_UP counts only when the change mask covers it (or
    // the mask is empty: the whole flags word is meant). Notifications
    // always report the full flags.
    let mask = header.change_mask;
    let up = (mask.is_empty() || mask.contains(LinkFlags::Up))
        .then(|| header.flags.contains(LinkFlags::Up));
    Ok(LinkChange {
        deleted,
        ifindex: header.index,
        name,
        up,
    })
}

fn addr(m: &AddressMessage, op: Op) -> NlObj {
    let a = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => {
            Some(prefix(*ip, m.header.prefix_len))
        }
        _ => None,
    });
    NlObj::Addr {
        op,
        ifindex: m.header.index,
        addr: a,
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
