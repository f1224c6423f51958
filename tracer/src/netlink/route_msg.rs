//! RTM_NEWROUTE/RTM_DELROUTE messages read straight from the wire, without
//! allocating: the hot path of a flush (one notification per route) and of
//! dumps with a million routes. `decode` turns a [`RouteMsg`] into the
//! event model's `Route`; the state mirror keeps its numbers as they are.
use super::error::MsgError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::names;
use crate::event::{Family, Route, prefix};

/// rtnetlink message types of routes.
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;

// Route attributes (uapi rtnetlink.h).
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const RTA_MULTIPATH: u16 = 9;
const RTA_VIA: u16 = 18;
const RTA_NH_ID: u16 = 30;
/// NLA_F_NESTED and NLA_F_NET_BYTEORDER are not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;
const RTMSG_LEN: usize = 12;
const AF_INET: u16 = tracer_common::af::INET as u16;
const AF_INET6: u16 = tracer_common::af::INET6 as u16;

/// The facts of one route message that the tracer reports or keys on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteMsg {
    /// AF_INET (2) or AF_INET6 (10); others are kept but have no `Family`.
    pub family: u8,
    pub dst_len: u8,
    /// RTA_TABLE when present, else the header's 8-bit table.
    pub table: u32,
    pub rtype: u8,
    pub protocol: u8,
    pub scope: u8,
    /// RTA_DST (4 or 16 bytes; IPv4 in the first 4).
    pub dst: Option<[u8; 16]>,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
    /// RTA_NH_ID: the nexthop object the route uses.
    pub nhid: Option<u32>,
    /// Whether the message has RTA_MULTIPATH (its next hops are decoded by
    /// `decode::nexthops`, off the hot path).
    pub multipath: bool,
}

fn addr(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()),
        16 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).into()),
        _ => None,
    }
}

fn u32_of(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

impl RouteMsg {
    /// Parse the payload of a route message (what follows the 16-byte
    /// netlink header).
    pub fn parse(payload: &[u8]) -> Result<RouteMsg, MsgError> {
        if payload.len() < RTMSG_LEN {
            return Err(MsgError::ShortRoute(payload.len()));
        }
        let mut m = RouteMsg {
            family: payload[0],
            dst_len: payload[1],
            table: u32::from(payload[4]),
            protocol: payload[5],
            scope: payload[6],
            rtype: payload[7],
            ..RouteMsg::default()
        };
        let mut off = RTMSG_LEN;
        while payload.len() - off >= 4 {
            let len = u16::from_ne_bytes([payload[off], payload[off + 1]]) as usize;
            let kind = u16::from_ne_bytes([payload[off + 2], payload[off + 3]]) & NLA_TYPE_MASK;
            if len < 4 || len > payload.len() - off {
                return Err(MsgError::RouteAttribute {
                    offset: off,
                    len,
                    left: payload.len() - off,
                });
            }
            let v = &payload[off + 4..off + len];
            match kind {
                RTA_DST => {
                    m.dst = addr(v).map(|a| match a {
                        IpAddr::V4(a) => {
                            let mut b = [0u8; 16];
                            b[..4].copy_from_slice(&a.octets());
                            b
                        }
                        IpAddr::V6(a) => a.octets(),
                    })
                }
                RTA_GATEWAY => m.gateway = addr(v),
                RTA_VIA if v.len() >= 2 => {
                    m.gateway = match u16::from_ne_bytes([v[0], v[1]]) {
                        AF_INET => v.get(2..6).and_then(addr),
                        AF_INET6 => v.get(2..18).and_then(addr),
                        _ => m.gateway,
                    }
                }
                // An index of 0 means "any device" (Go's netlink sends it
                // on deletions), as the kernel reads it.
                RTA_OIF => m.oif = u32_of(v).filter(|i| *i != 0),
                RTA_PRIORITY => m.metric = u32_of(v),
                RTA_TABLE => m.table = u32_of(v).unwrap_or(m.table),
                RTA_NH_ID => m.nhid = u32_of(v),
                RTA_MULTIPATH => m.multipath = !v.is_empty(),
                _ => {}
            }
            // The last attribute's padding may be missing.
            off = (off + ((len + 3) & !3)).min(payload.len());
        }
        Ok(m)
    }

    pub fn family(&self) -> Option<Family> {
        Family::from_af(self.family)
    }

    /// RTA_DST as an address of the message's family.
    pub fn dst_addr(&self) -> Option<IpAddr> {
        let d = self.dst?;
        match self.family() {
            Some(Family::Inet) => Some(Ipv4Addr::new(d[0], d[1], d[2], d[3]).into()),
            Some(Family::Inet6) => Some(Ipv6Addr::from(d).into()),
            None => None,
        }
    }

    /// The route in the event model. `dev` is left for the caller, which
    /// knows the namespace's interfaces; `ifindex` carries RTA_OIF.
    pub fn to_route(self) -> Route {
        let fam = self.family();
        let dst = match (self.dst_addr(), fam) {
            (Some(d), _) => Some(prefix(d, self.dst_len)),
            // Without RTA_DST the kernel reads the zero address: a request
            // of length 24 and no RTA_DST is 0.0.0.0/24 (the default route
            // at length 0).
            (None, Some(Family::Inet)) => Some(prefix(Ipv4Addr::UNSPECIFIED.into(), self.dst_len)),
            (None, Some(Family::Inet6)) => Some(prefix(Ipv6Addr::UNSPECIFIED.into(), self.dst_len)),
            (None, None) => None,
        };
        Route {
            family: fam,
            table: Some(self.table),
            table_name: None,
            rtype: Some(names::route_type(self.rtype)),
            dst,
            gateway: self.gateway.map(|g| g.to_string()),
            dev: None,
            ifindex: self.oif,
            metric: self.metric,
            protocol: Some(names::protocol(self.protocol)),
            scope: Some(names::scope(self.scope)),
            nexthops: Vec::new(),
            nhid: self.nhid,
        }
    }
}
