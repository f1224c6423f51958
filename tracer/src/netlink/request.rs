//! Requests that put a route or a rule back (`tracer guard --repair`),
//! built with netlink-packet-route from the event model: the object as the
//! kernel reported it when it was removed, attribute by attribute. Always
//! create-exclusive (NLM_F_CREATE | NLM_F_EXCL): a request never replaces
//! or deletes what is there.
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, IpProtocol, RouteNetlinkMessage,
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteNextHopFlags,
        RouteProtocol, RouteScope, RouteType, RouteVia,
    },
    rule::{
        RuleAction, RuleAttribute, RuleFlags, RuleHeader, RuleMessage, RulePortRange, RuleUidRange,
    },
};

use super::names;
use crate::{
    event::{Family, NextHop, Route, Rule},
    prefix,
};

/// Why an object cannot be turned into a request.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum BuildError {
    #[error("it has no address family")]
    NoFamily,
    #[error("it has no table")]
    NoTable,
    #[error("{what} {value:?} is not a prefix of its family")]
    Prefix { what: &'static str, value: String },
    #[error("{what} {value:?} is not an address")]
    Address { what: &'static str, value: String },
    #[error("unknown {what} {value:?}")]
    Name { what: &'static str, value: String },
    #[error("{what} {value:?} is not a range")]
    Range { what: &'static str, value: String },
    #[error("the device {0:?} has no interface index")]
    NoIndex(String),
}

fn af(f: Option<Family>) -> Result<AddressFamily, BuildError> {
    match f.ok_or(BuildError::NoFamily)? {
        Family::Inet => Ok(AddressFamily::Inet),
        Family::Inet6 => Ok(AddressFamily::Inet6),
    }
}

/// "a/len" of the object's family: the address and the length.
fn net(what: &'static str, s: &str, fam: Family) -> Result<(IpAddr, u8), BuildError> {
    let bad = || BuildError::Prefix {
        what,
        value: s.to_string(),
    };
    let n = prefix::parse(s).ok_or_else(bad)?;
    if n.addr().is_ipv4() != (fam == Family::Inet) {
        return Err(bad());
    }
    Ok((n.addr(), n.prefix_len()))
}

fn address(what: &'static str, s: &str) -> Result<IpAddr, BuildError> {
    s.parse().map_err(|_| BuildError::Address {
        what,
        value: s.to_string(),
    })
}

fn route_address(a: IpAddr) -> RouteAddress {
    match a {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

/// A gateway: RTA_GATEWAY in the route's family, else RTA_VIA (an IPv6
/// next hop of an IPv4 route).
fn gateway(g: &str, fam: Family) -> Result<RouteAttribute, BuildError> {
    let a = address("gateway", g)?;
    Ok(match (a, fam) {
        (IpAddr::V4(_), Family::Inet) | (IpAddr::V6(_), Family::Inet6) => {
            RouteAttribute::Gateway(route_address(a))
        }
        (IpAddr::V4(v4), Family::Inet6) => RouteAttribute::Via(RouteVia::Inet(v4)),
        (IpAddr::V6(v6), Family::Inet) => RouteAttribute::Via(RouteVia::Inet6(v6)),
    })
}

fn named(what: &'static str, value: &str, n: Option<u8>) -> Result<u8, BuildError> {
    n.ok_or_else(|| BuildError::Name {
        what,
        value: value.to_string(),
    })
}

fn table_fields(table: u32) -> u8 {
    // Tables past 255 travel in RTA_TABLE / FRA_TABLE only.
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

/// The RTM_NEWROUTE message that adds `r` again. Device indices are taken
/// from `ifindex` (of the route and of each next hop), which the caller
/// sets to the devices' indices now.
pub fn route_message(r: &Route) -> Result<RouteMessage, BuildError> {
    let fam = r.family.ok_or(BuildError::NoFamily)?;
    let table = r.table.ok_or(BuildError::NoTable)?;
    let dst = r.dst.as_deref().unwrap_or(fam.any());
    let (dst_addr, dst_len) = net("destination", dst, fam)?;
    let mut m = RouteMessage::default();
    m.header.address_family = af(r.family)?;
    m.header.destination_prefix_length = dst_len;
    m.header.table = table_fields(table);
    let rtype = r.rtype.as_deref().unwrap_or("unicast");
    m.header.kind = RouteType::from(named("route type", rtype, names::route_type_number(rtype))?);
    let proto = r.protocol.as_deref().unwrap_or("boot");
    m.header.protocol =
        RouteProtocol::from(named("protocol", proto, names::protocol_number(proto))?);
    let scope = r.scope.as_deref().unwrap_or("global");
    m.header.scope = RouteScope::from(named("scope", scope, names::scope_number(scope))?);
    let a = &mut m.attributes;
    // A length of 0 needs no address, unless the address has bits: then
    // the request names it, and the kernel refuses it as it would refuse
    // the route (without it, the request named the default route).
    if dst_len > 0 || !dst_addr.is_unspecified() {
        a.push(RouteAttribute::Destination(route_address(dst_addr)));
    }
    a.push(RouteAttribute::Table(table));
    if let Some(metric) = r.metric {
        a.push(RouteAttribute::Priority(metric));
    }
    if let Some(id) = r.nhid {
        // The nexthop object says how to forward; the kernel refuses a
        // device or gateway next to it.
        a.push(RouteAttribute::NhId(id));
    } else if !r.nexthops.is_empty() {
        let hops = r
            .nexthops
            .iter()
            .map(|h| next_hop(h, fam))
            .collect::<Result<Vec<_>, _>>()?;
        a.push(RouteAttribute::MultiPath(hops));
    } else {
        if let Some(g) = &r.gateway {
            a.push(gateway(g, fam)?);
        }
        match (r.ifindex, &r.dev) {
            (Some(i), _) => a.push(RouteAttribute::Oif(i)),
            (None, Some(d)) => return Err(BuildError::NoIndex(d.clone())),
            (None, None) => {}
        }
    }
    Ok(m)
}

fn next_hop(h: &NextHop, fam: Family) -> Result<RouteNextHop, BuildError> {
    let mut hop = RouteNextHop::default();
    hop.hops = u8::try_from(h.weight.saturating_sub(1)).unwrap_or(u8::MAX);
    // Of the flags a dump shows, only onlink is the requester's to set.
    if h.flags.iter().any(|f| f == "onlink") {
        hop.flags = RouteNextHopFlags::Onlink;
    }
    hop.interface_index = match (h.ifindex, &h.dev) {
        (Some(i), _) => i,
        (None, Some(d)) => return Err(BuildError::NoIndex(d.clone())),
        (None, None) => 0,
    };
    if let Some(g) = &h.gateway {
        hop.attributes.push(gateway(g, fam)?);
    }
    Ok(hop)
}

fn rule_action(a: &str) -> Option<u8> {
    Some(match a {
        "table" => 1,
        "goto" => 2,
        "nop" => 3,
        "blackhole" => 6,
        "unreachable" => 7,
        "prohibit" => 8,
        other => other.parse().ok()?,
    })
}

fn range<T: std::str::FromStr + Copy>(what: &'static str, s: &str) -> Result<(T, T), BuildError> {
    let bad = || BuildError::Range {
        what,
        value: s.to_string(),
    };
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// The RTM_NEWRULE message that adds `r` again, with every selector the
/// removal reported.
pub fn rule_message(r: &Rule) -> Result<RuleMessage, BuildError> {
    let fam = r.family.ok_or(BuildError::NoFamily)?;
    let mut m = RuleMessage::default();
    let h: &mut RuleHeader = &mut m.header;
    h.family = af(r.family)?;
    h.tos = r.tos.unwrap_or(0);
    let action = r.action.as_deref().unwrap_or("table");
    h.action = RuleAction::from(named("rule action", action, rule_action(action))?);
    if r.invert {
        h.flags = RuleFlags::Invert;
    }
    if let Some(t) = r.table {
        h.table = table_fields(t);
    }
    let mut a = Vec::new();
    if let Some(p) = r.priority {
        a.push(RuleAttribute::Priority(p));
    }
    if let Some(t) = r.table {
        a.push(RuleAttribute::Table(t));
    }
    if let Some(s) = &r.src {
        let (addr, len) = net("from", s, fam)?;
        m.header.src_len = len;
        a.push(RuleAttribute::Source(addr));
    }
    if let Some(d) = &r.dst {
        let (addr, len) = net("to", d, fam)?;
        m.header.dst_len = len;
        a.push(RuleAttribute::Destination(addr));
    }
    if let Some(v) = r.fwmark {
        a.push(RuleAttribute::FwMark(v));
    }
    if let Some(v) = r.fwmask {
        a.push(RuleAttribute::FwMask(v));
    }
    if let Some(n) = &r.iif {
        a.push(RuleAttribute::Iifname(n.clone()));
    }
    if let Some(n) = &r.oif {
        a.push(RuleAttribute::Oifname(n.clone()));
    }
    if let Some(g) = r.goto {
        a.push(RuleAttribute::Goto(g));
    }
    if let Some(v) = r.suppress_prefixlen {
        a.push(RuleAttribute::SuppressPrefixLen(v));
    }
    if let Some(u) = &r.uid_range {
        let (start, end) = range("uidrange", u)?;
        a.push(RuleAttribute::UidRange(RuleUidRange { start, end }));
    }
    if let Some(p) = r.ipproto {
        a.push(RuleAttribute::IpProtocol(IpProtocol::from(p)));
    }
    if let Some(p) = &r.sport {
        let (start, end) = range("sport", p)?;
        a.push(RuleAttribute::SourcePortRange(RulePortRange { start, end }));
    }
    if let Some(p) = &r.dport {
        let (start, end) = range("dport", p)?;
        a.push(RuleAttribute::DestinationPortRange(RulePortRange {
            start,
            end,
        }));
    }
    if let Some(p) = &r.protocol {
        let n = named("protocol", p, names::protocol_number(p))?;
        a.push(RuleAttribute::Protocol(RouteProtocol::from(n)));
    }
    m.attributes = a;
    Ok(m)
}

/// The message on the wire: a create-exclusive request that asks for an
/// acknowledgement.
pub fn create_exclusive(inner: RouteNetlinkMessage, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    out
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
