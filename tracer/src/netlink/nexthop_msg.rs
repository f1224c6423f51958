//! Nexthop objects' messages (RTM_NEWNEXTHOP/RTM_DELNEXTHOP, uapi
//! linux/nexthop.h), read by hand: netlink-packet-route 0.34 has no
//! nexthop message types. Every length is checked; attributes this module
//! does not know (newer kernels) are skipped.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::NLA_TYPE_MASK;

use super::{error::MsgError, names};
use crate::event::{Family, GroupMember, Nexthop, Resilient};

/// rtnetlink message types of nexthop objects.
pub const RTM_NEWNEXTHOP: u16 = 104;
pub const RTM_DELNEXTHOP: u16 = 105;
pub const RTM_GETNEXTHOP: u16 = 106;

/// The length of `struct nhmsg`.
const NHMSG_LEN: usize = 8;
const NLMSG_HDRLEN: usize = 16;
/// The length of `struct nexthop_grp`.
const NH_GRP_LEN: usize = 8;

// Nexthop attributes (uapi linux/nexthop.h). NHA_ENCAP_TYPE, NHA_ENCAP,
// NHA_GROUPS, NHA_MASTER, NHA_RES_BUCKET, NHA_OP_FLAGS, NHA_GROUP_STATS and
// NHA_HW_STATS_* are not part of the event model and are skipped.
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_GROUP_TYPE: u16 = 3;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const NHA_FDB: u16 = 11;
const NHA_RES_GROUP: u16 = 12;

// Inside NHA_RES_GROUP (NHA_RES_GROUP_PAD = 0 is skipped).
const NHA_RES_GROUP_BUCKETS: u16 = 1;
const NHA_RES_GROUP_IDLE_TIMER: u16 = 2;
const NHA_RES_GROUP_UNBALANCED_TIMER: u16 = 3;
const NHA_RES_GROUP_UNBALANCED_TIME: u16 = 4;

/// NEXTHOP_GRP_TYPE_*.
const GROUP_TYPES: &[(u16, &str)] = &[(0, "mpath"), (1, "resilient")];

/// The kernel reports the resilient group's timers in clock_t, USER_HZ
/// ticks a second (100 on every architecture the tracer builds for).
const USER_HZ: u32 = 100;

/// RTNH_F_* bits of `nh_flags`, named as `ip` names them.
const FLAGS: &[(u32, &str)] = &[
    (1, "dead"),
    (2, "pervasive"),
    (4, "onlink"),
    (8, "offload"),
    (16, "linkdown"),
    (32, "unresolved"),
    (64, "trap"),
];

const AF_INET: u8 = tracer_common::af::INET;
const AF_INET6: u8 = tracer_common::af::INET6;

/// One attribute: its type (flags masked off) and its value.
struct Attr<'a> {
    kind: u16,
    value: &'a [u8],
}

/// The attributes of `buf`, each length checked against what is left.
/// Fewer than 4 bytes after the last one (padding) end the walk.
fn attrs(buf: &[u8]) -> impl Iterator<Item = Result<Attr<'_>, MsgError>> {
    let mut off = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || buf.len().saturating_sub(off) < 4 {
            return None;
        }
        let left = buf.len() - off;
        let len = usize::from(u16::from_ne_bytes([buf[off], buf[off + 1]]));
        // NLA_F_NESTED and NLA_F_NET_BYTEORDER are not part of the type.
        let kind = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]) & NLA_TYPE_MASK;
        if len < 4 || len > left {
            failed = true;
            return Some(Err(MsgError::NexthopAttributeBounds {
                offset: off,
                len,
                left,
            }));
        }
        let value = &buf[off + 4..off + len];
        // The last attribute's padding may be missing.
        off = (off + ((len + 3) & !3)).min(buf.len());
        Some(Ok(Attr { kind, value }))
    })
}

/// `value` as exactly N bytes, else the error naming `attr`.
fn fixed<const N: usize>(attr: &'static str, value: &[u8]) -> Result<[u8; N], MsgError> {
    value.try_into().map_err(|_| MsgError::NexthopAttribute {
        attr,
        len: value.len(),
        want: N,
    })
}

/// Parse the payload of a nexthop message (what follows the 16-byte netlink
/// header). A deletion request names only NHA_ID; everything else is then
/// left at its default. The device is left to the caller, which knows the
/// namespace's interfaces; `ifindex` carries NHA_OIF.
pub fn parse(payload: &[u8]) -> Result<Nexthop, MsgError> {
    if payload.len() < NHMSG_LEN {
        return Err(MsgError::ShortNexthop(payload.len()));
    }
    let af = payload[0];
    let protocol = payload[2];
    let flags = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
    let mut nh = Nexthop {
        family: Family::from_af(af),
        // RTPROT_UNSPEC: a request that names no protocol (a deletion).
        protocol: (protocol != 0).then(|| names::protocol(protocol)),
        flags: flag_names(flags),
        ..Nexthop::default()
    };
    let mut id = None;
    for a in attrs(&payload[NHMSG_LEN..]) {
        let a = a?;
        match a.kind {
            NHA_ID => id = Some(u32::from_ne_bytes(fixed("NHA_ID", a.value)?)),
            NHA_GROUP => nh.group = group(a.value)?,
            NHA_GROUP_TYPE => {
                let t = u16::from_ne_bytes(fixed("NHA_GROUP_TYPE", a.value)?);
                nh.group_type = Some(group_type(t));
            }
            NHA_BLACKHOLE => nh.blackhole = true,
            NHA_FDB => nh.fdb = true,
            NHA_OIF => {
                let i = u32::from_ne_bytes(fixed("NHA_OIF", a.value)?);
                nh.ifindex = (i != 0).then_some(i);
            }
            NHA_GATEWAY => nh.gateway = Some(gateway(af, a.value)?.to_string()),
            NHA_RES_GROUP => nh.resilient = Some(resilient(a.value)?),
            _ => {}
        }
    }
    nh.id = id.ok_or(MsgError::NexthopNoId)?;
    Ok(nh)
}

fn flag_names(flags: u32) -> Vec<String> {
    FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

fn group_type(t: u16) -> String {
    match GROUP_TYPES.iter().find(|(k, _)| *k == t) {
        Some((_, name)) => name.to_string(),
        None => t.to_string(),
    }
}

/// NHA_GATEWAY: an address of the message's family, as the kernel reads it.
fn gateway(af: u8, v: &[u8]) -> Result<IpAddr, MsgError> {
    let bad = || MsgError::NexthopGateway {
        family: af,
        len: v.len(),
    };
    match af {
        AF_INET => Ok(Ipv4Addr::from(<[u8; 4]>::try_from(v).map_err(|_| bad())?).into()),
        AF_INET6 => Ok(Ipv6Addr::from(<[u8; 16]>::try_from(v).map_err(|_| bad())?).into()),
        _ => Err(bad()),
    }
}

/// NHA_GROUP: `struct nexthop_grp` entries. The weight `ip` shows is one
/// more than the wire's: `weight` is its low byte, and `weight_high` (the
/// former resvd1, 6.12+; 0 before) its high byte.
fn group(v: &[u8]) -> Result<Vec<GroupMember>, MsgError> {
    if !v.len().is_multiple_of(NH_GRP_LEN) {
        return Err(MsgError::NexthopGroup(v.len()));
    }
    Ok(v.chunks_exact(NH_GRP_LEN)
        .map(|e| GroupMember {
            id: u32::from_ne_bytes([e[0], e[1], e[2], e[3]]),
            weight: ((u32::from(e[5]) << 8) | u32::from(e[4])) + 1,
        })
        .collect())
}

/// NHA_RES_GROUP: the timers in seconds (the kernel's clock_t divided by
/// USER_HZ, a fraction dropped), the unbalanced time in clock ticks.
fn resilient(v: &[u8]) -> Result<Resilient, MsgError> {
    let mut r = Resilient::default();
    for a in attrs(v) {
        let a = a?;
        match a.kind {
            NHA_RES_GROUP_BUCKETS => {
                r.buckets = Some(u16::from_ne_bytes(fixed("NHA_RES_GROUP_BUCKETS", a.value)?))
            }
            NHA_RES_GROUP_IDLE_TIMER => {
                let t = u32::from_ne_bytes(fixed("NHA_RES_GROUP_IDLE_TIMER", a.value)?);
                r.idle_timer = Some(t / USER_HZ);
            }
            NHA_RES_GROUP_UNBALANCED_TIMER => {
                let t = u32::from_ne_bytes(fixed("NHA_RES_GROUP_UNBALANCED_TIMER", a.value)?);
                r.unbalanced_timer = Some(t / USER_HZ);
            }
            NHA_RES_GROUP_UNBALANCED_TIME => {
                let t = u64::from_ne_bytes(fixed("NHA_RES_GROUP_UNBALANCED_TIME", a.value)?);
                r.unbalanced_time = Some(t);
            }
            _ => {}
        }
    }
    Ok(r)
}

/// A whole netlink message: the header (pid 0) and `body`.
fn message(msg_type: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    let len = (NLMSG_HDRLEN + body.len()) as u32;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&msg_type.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(body);
    out
}

/// `struct nhmsg` (scope 0: the kernel reports it only).
fn nhmsg(family: u8, protocol: u8, flags: u32) -> [u8; NHMSG_LEN] {
    let f = flags.to_ne_bytes();
    [family, 0, protocol, 0, f[0], f[1], f[2], f[3]]
}

/// RTM_GETNEXTHOP with NLM_F_DUMP: every nexthop object of the namespace
/// (AF_UNSPEC, no filter).
pub fn dump_request(seq: u32) -> Vec<u8> {
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    message(
        RTM_GETNEXTHOP,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        &nhmsg(0, 0, 0),
    )
}

/// The whole netlink message (header included) that says `nh`: what the
/// kernel would send for it, for round trips in tests and in the fuzz
/// targets (the tracer reads nexthop messages, never sends them).
/// Unknown flag names, group types and protocol names, and a gateway that
/// is not an address, are left out.
pub fn encode(msg_type: u16, flags: u16, seq: u32, nh: &Nexthop) -> Vec<u8> {
    const NLA_F_NESTED: u16 = 0x8000;
    fn put(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        out.extend_from_slice(&(len as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(out.len() + ((4 - len % 4) % 4), 0);
    }
    let af = match nh.family {
        Some(Family::Inet) => AF_INET,
        Some(Family::Inet6) => AF_INET6,
        None => 0,
    };
    let protocol = nh
        .protocol
        .as_deref()
        .and_then(names::protocol_number)
        .unwrap_or(0);
    let bits = FLAGS
        .iter()
        .filter(|(_, name)| nh.flags.iter().any(|f| f == name))
        .fold(0u32, |b, (bit, _)| b | bit);
    let mut body = nhmsg(af, protocol, bits).to_vec();
    put(&mut body, NHA_ID, &nh.id.to_ne_bytes());
    if !nh.group.is_empty() {
        let mut v = Vec::with_capacity(nh.group.len() * NH_GRP_LEN);
        for m in &nh.group {
            let w = m.weight.saturating_sub(1);
            v.extend_from_slice(&m.id.to_ne_bytes());
            v.extend_from_slice(&[w as u8, (w >> 8) as u8, 0, 0]);
        }
        put(&mut body, NHA_GROUP, &v);
    }
    let group_type = nh.group_type.as_deref().and_then(|t| {
        GROUP_TYPES
            .iter()
            .find(|(_, name)| *name == t)
            .map(|(k, _)| *k)
            .or_else(|| t.parse().ok())
    });
    if let Some(t) = group_type {
        put(&mut body, NHA_GROUP_TYPE, &t.to_ne_bytes());
    }
    if let Some(r) = nh.resilient {
        let mut v = Vec::new();
        if let Some(b) = r.buckets {
            put(&mut v, NHA_RES_GROUP_BUCKETS, &b.to_ne_bytes());
        }
        if let Some(t) = r.idle_timer {
            let ticks = t.saturating_mul(USER_HZ);
            put(&mut v, NHA_RES_GROUP_IDLE_TIMER, &ticks.to_ne_bytes());
        }
        if let Some(t) = r.unbalanced_timer {
            let ticks = t.saturating_mul(USER_HZ);
            put(&mut v, NHA_RES_GROUP_UNBALANCED_TIMER, &ticks.to_ne_bytes());
        }
        if let Some(t) = r.unbalanced_time {
            put(&mut v, NHA_RES_GROUP_UNBALANCED_TIME, &t.to_ne_bytes());
        }
        put(&mut body, NHA_RES_GROUP | NLA_F_NESTED, &v);
    }
    if nh.blackhole {
        put(&mut body, NHA_BLACKHOLE, &[]);
    }
    if nh.fdb {
        put(&mut body, NHA_FDB, &[]);
    }
    if let Some(i) = nh.ifindex {
        put(&mut body, NHA_OIF, &i.to_ne_bytes());
    }
    match nh.gateway.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(IpAddr::V4(a))) => put(&mut body, NHA_GATEWAY, &a.octets()),
        Some(Ok(IpAddr::V6(a))) => put(&mut body, NHA_GATEWAY, &a.octets()),
        _ => {}
    }
    message(msg_type, flags, seq, &body)
}

#[cfg(test)]
#[path = "nexthop_msg_tests.rs"]
mod tests;
