//! What the detector reports: loops, as findings about flows of looped
//! packets.
use std::net::IpAddr;

use crate::{
    collect::packet::{L4, LookupObs, PacketObs},
    event::Family,
};

/// The fields of a packet a finding reports.
#[derive(Clone, Debug, PartialEq)]
pub struct PacketBrief {
    /// When it was seen (CLOCK_BOOTTIME ns).
    pub ts_ns: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol / IPv6 next header.
    pub proto: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification; None for IPv6.
    pub ip_id: Option<u16>,
    pub l4: L4,
    /// IP total length.
    pub len: u32,
    /// skb->mark when it was seen.
    pub mark: u32,
}

impl PacketBrief {
    /// The brief of an observed packet.
    pub fn of(p: &PacketObs) -> Self {
        PacketBrief {
            ts_ns: p.ts_ns,
            src: p.src,
            dst: p.dst,
            proto: p.proto,
            ttl: p.ttl,
            ip_id: p.ip_id,
            l4: p.l4,
            len: p.len,
            mark: p.mark,
        }
    }
}

/// One forwarding loop (a flow of looped packets), as far as known when
/// the finding was made.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopInfo {
    /// Namespace inode of the interface.
    pub netns: u32,
    pub ifindex: u32,
    pub iface: String,
    pub family: Family,
    /// The first packet received on the interface that was looped.
    pub original: PacketBrief,
    /// Its copy transmitted on the same interface.
    pub looped: PacketBrief,
    /// The looped copy's source was rewritten to an own address.
    pub snat: bool,
    /// Looped packets in the flow so far.
    pub packets: u64,
    /// The lowest TTL or hop limit of the flow's looped packets so far:
    /// below `looped.ttl` when the loop makes several passes (the looped
    /// copy comes back in and is sent out again, one TTL lower each time).
    pub lowest_ttl: u8,
    /// Looped packets since the previous finding about this flow.
    pub new_packets: u64,
    /// ICMP time-exceeded messages seen on the interface about the flow's
    /// destination (from the quoted header) or, when no header was
    /// captured, sent to its source.
    pub ttl_exceeded: u64,
    /// Timestamp of the first packet of the flow (its original).
    pub first_seen_ns: u64,
    /// Timestamp of the latest looped packet.
    pub last_seen_ns: u64,
    /// The successful lookup for the original packet whose input interface
    /// is this one and whose result device is this interface again.
    pub hairpin: Option<LookupObs>,
    /// The lookups seen for the original packet, in order: (table, err).
    pub tables_tried: Vec<(u32, i32)>,
}

/// What the detector reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// A new loop.
    Loop(LoopInfo),
    /// A loop still going on, with packets since the previous finding.
    Summary(LoopInfo),
    /// A loop with no looped packet for `end_after`.
    End(LoopInfo),
}

impl Finding {
    /// The loop the finding is about.
    pub fn info(&self) -> &LoopInfo {
        match self {
            Finding::Loop(i) | Finding::Summary(i) | Finding::End(i) => i,
        }
    }
}
