//! When a transmitted packet is a looped copy of a received one, and what
//! an ICMP time-exceeded message is about.
use std::{collections::HashSet, net::IpAddr};

use super::PacketBrief;
use crate::collect::packet::{L4, PacketObs};

/// The fields a looped copy keeps even through masquerade: destination,
/// protocol, IPv4 ID (IPv6: length, as it has no ID), echo sequence or
/// destination port. Recent packets are indexed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct MatchKey {
    dst: IpAddr,
    proto: u8,
    id: u32,
    l4: u16,
}

impl MatchKey {
    pub fn of(p: &PacketBrief) -> Self {
        MatchKey {
            dst: p.dst,
            proto: p.proto,
            id: p.ip_id.map_or(p.len, u32::from),
            l4: match p.l4 {
                L4::Echo { seq, .. } => seq,
                L4::Ports { dport, .. } => dport,
                L4::Icmp { icmp_type, .. } => u16::from(icmp_type),
                L4::Other => 0,
            },
        }
    }
}

/// Whether a packet to `dst` can be forwarded at all (multicast,
/// broadcast, link-local and loopback destinations are not routed).
pub(super) fn forwardable(dst: IpAddr) -> bool {
    match dst {
        IpAddr::V4(a) => {
            !(a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
                || a.is_loopback()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            !(a.is_multicast()
                || a.is_unspecified()
                || a.is_loopback()
                || a.is_unicast_link_local())
        }
    }
}

/// Same identity: IPv4 ID, or for IPv6 (no ID) the length.
fn same_id(a: &PacketBrief, b: &PacketBrief) -> bool {
    match (a.ip_id, b.ip_id) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.len == b.len,
        _ => false,
    }
}

/// Whether the transport identities agree. `relaxed`: the source was
/// rewritten and the IPv4 ID corroborates, so NAT may have changed the echo
/// id or the source port.
fn same_l4(rx: &L4, tx: &L4, relaxed: bool) -> bool {
    match (rx, tx) {
        (
            L4::Echo {
                request: a,
                id: i,
                seq: s,
            },
            L4::Echo {
                request: b,
                id: j,
                seq: t,
            },
        ) => a == b && s == t && (i == j || relaxed),
        (L4::Ports { sport: a, dport: b }, L4::Ports { sport: c, dport: d }) => {
            b == d && (a == c || relaxed)
        }
        _ => rx == tx,
    }
}

/// Whether `tx` (transmitted on the interface `rx` was received on) is a
/// looped copy of `rx`: the same packet, TTL strictly lower, within the
/// window either way, source unchanged or rewritten to an own address.
/// Some(snat) when it is.
pub(super) fn looped(
    rx: &PacketBrief,
    tx: &PacketBrief,
    own: Option<&HashSet<IpAddr>>,
    window_ns: u64,
) -> Option<bool> {
    if tx.dst != rx.dst
        || tx.proto != rx.proto
        || tx.ttl >= rx.ttl
        || tx.ts_ns.abs_diff(rx.ts_ns) > window_ns
        || !same_id(rx, tx)
    {
        return None;
    }
    let snat = if tx.src == rx.src {
        false
    } else if own.is_some_and(|o| o.contains(&tx.src)) {
        true
    } else {
        return None;
    };
    // A copy that came back in from the router's own address (a loop of
    // several passes, masqueraded each time) and goes out again: NAT may
    // have given it another echo id or source port, for IPv6 too.
    let again = !snat && own.is_some_and(|o| o.contains(&rx.src));
    let relaxed = (snat && rx.ip_id.is_some()) || again;
    same_l4(&rx.l4, &tx.l4, relaxed).then_some(snat)
}

/// Whether `rx` is `tx` received back after another hop (the loop runs
/// through a peer) or handed back as it was by a userspace forwarder
/// (tailscaled): everything equal, TTL lower or the same.
pub(super) fn same_copy(tx: &PacketBrief, rx: &PacketBrief, window_ns: u64) -> bool {
    rx.src == tx.src
        && rx.dst == tx.dst
        && rx.proto == tx.proto
        && rx.l4 == tx.l4
        && rx.ttl <= tx.ttl
        && same_id(tx, rx)
        && rx.ts_ns.abs_diff(tx.ts_ns) <= window_ns
}

/// An ICMP time-exceeded message seen on an interface.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct TeSeen {
    pub ts_ns: u64,
    /// Where it was sent.
    pub dst: IpAddr,
    /// The destination of the packet it quotes, when captured.
    pub about: Option<IpAddr>,
}

impl TeSeen {
    pub fn of(p: &PacketObs) -> Self {
        TeSeen {
            ts_ns: p.ts_ns,
            dst: p.dst,
            about: quoted_dst(&p.bytes),
        }
    }
}

/// The destination of the packet an ICMP/ICMPv6 error quotes; `b` starts
/// at the outer IP header. None when not captured far enough or not an
/// ICMP error right after the IP header.
fn quoted_dst(b: &[u8]) -> Option<IpAddr> {
    let version = b.first()? >> 4;
    match version {
        4 => {
            let ihl = usize::from(b.first()? & 0x0f) * 4;
            if ihl < 20 || *b.get(9)? != 1 {
                return None;
            }
            let inner = b.get(ihl + 8..)?;
            if inner.first()? >> 4 != 4 {
                return None;
            }
            let d: [u8; 4] = inner.get(16..20)?.try_into().ok()?;
            Some(IpAddr::from(d))
        }
        6 => {
            if *b.get(6)? != 58 {
                return None;
            }
            let inner = b.get(48..)?;
            if inner.first()? >> 4 != 6 {
                return None;
            }
            let d: [u8; 16] = inner.get(24..40)?.try_into().ok()?;
            Some(IpAddr::from(d))
        }
        _ => None,
    }
}
