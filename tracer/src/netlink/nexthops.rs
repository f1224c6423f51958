//! The next hops of a multipath route (RTA_MULTIPATH), decoded with
//! netlink-packet-route. Only messages that carry the attribute come here,
//! so the hand-read hot path of route messages (`route_msg`) stays as it is.
use super::error::MsgError;
use netlink_packet_core::{NlasIterator, ParseableParametrized};
use netlink_packet_route::{
    AddressFamily,
    route::{
        RouteAddress, RouteAttribute, RouteLwEnCapType, RouteNextHop, RouteNextHopFlags, RouteType,
        RouteVia,
    },
};

use crate::event::NextHop;

/// RTA_MULTIPATH (uapi rtnetlink.h).
const RTA_MULTIPATH: u16 = 9;
/// The length of `struct rtmsg`.
const RTMSG_LEN: usize = 12;

/// The next hops in the payload of a route message (what follows the
/// netlink header), in the kernel's order; empty without RTA_MULTIPATH.
/// Device names are left to the caller, which knows the interfaces.
pub fn parse(payload: &[u8]) -> Result<Vec<NextHop>, MsgError> {
    let (Some(&family), Some(&rtype)) = (payload.first(), payload.get(7)) else {
        return Err(MsgError::ShortRoute(payload.len()));
    };
    let attrs = payload.get(RTMSG_LEN..).unwrap_or_default();
    for nla in NlasIterator::new(attrs) {
        let nla = nla.map_err(|e| MsgError::Multipath(e.to_string()))?;
        if nla.kind() & netlink_packet_core::NLA_TYPE_MASK != RTA_MULTIPATH {
            continue;
        }
        let param = (
            AddressFamily::from(family),
            RouteType::from(rtype),
            RouteLwEnCapType::default(),
        );
        return match RouteAttribute::parse_with_param(&nla, param) {
            Ok(RouteAttribute::MultiPath(hops)) => Ok(hops.iter().map(next_hop).collect()),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(MsgError::Multipath(e.to_string())),
        };
    }
    Ok(Vec::new())
}

fn next_hop(h: &RouteNextHop) -> NextHop {
    let gateway = h.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(a.to_string()),
        RouteAttribute::Gateway(RouteAddress::Inet6(a)) => Some(a.to_string()),
        RouteAttribute::Via(RouteVia::Inet(a)) => Some(a.to_string()),
        RouteAttribute::Via(RouteVia::Inet6(a)) => Some(a.to_string()),
        _ => None,
    });
    NextHop {
        gateway,
        dev: None,
        ifindex: (h.interface_index != 0).then_some(h.interface_index),
        weight: u16::from(h.hops) + 1,
        flags: flag_names(h.flags),
    }
}

fn flag_names(f: RouteNextHopFlags) -> Vec<String> {
    [
        (RouteNextHopFlags::Dead, "dead"),
        (RouteNextHopFlags::Pervasive, "pervasive"),
        (RouteNextHopFlags::Onlink, "onlink"),
        (RouteNextHopFlags::Offload, "offload"),
        (RouteNextHopFlags::Linkdown, "linkdown"),
        (RouteNextHopFlags::Unresolved, "unresolved"),
        (RouteNextHopFlags::Trap, "trap"),
    ]
    .into_iter()
    .filter(|(bit, _)| f.contains(*bit))
    .map(|(_, name)| name.to_string())
    .collect()
}
