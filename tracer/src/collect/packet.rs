//! What the packet-path programs tell userspace, after decoding: one packet
//! seen on a watched interface, or one FIB lookup made for a packet that
//! arrived on one. These are the detector's inputs.
use std::{net::IpAddr, sync::Arc};

use crate::event::Family;

/// Whether the packet was received on or queued for transmission out of
/// the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// net:netif_receive_skb
    Rx,
    /// net:net_dev_queue
    Tx,
}

/// The transport-level identity of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4 {
    /// ICMP or ICMPv6 echo request/reply.
    Echo { request: bool, id: u16, seq: u16 },
    /// Any other ICMP/ICMPv6 message. Time exceeded is ICMP type 11 and
    /// ICMPv6 type 3 (see [`L4::is_time_exceeded`]).
    Icmp {
        family: Family,
        icmp_type: u8,
        code: u8,
    },
    /// TCP, UDP, SCTP, UDP-Lite.
    Ports { sport: u16, dport: u16 },
    /// Other protocols, or a header that was not captured.
    Other,
}

impl L4 {
    pub fn is_time_exceeded(&self) -> bool {
        matches!(
            self,
            L4::Icmp {
                family: Family::Inet,
                icmp_type: 11,
                ..
            } | L4::Icmp {
                family: Family::Inet6,
                icmp_type: 3,
                ..
            }
        )
    }
}

/// One packet on a watched interface.
#[derive(Clone, Debug, PartialEq)]
pub struct PacketObs {
    /// bpf_ktime_get_boot_ns() when the tracepoint fired (CLOCK_BOOTTIME).
    pub ts_ns: u64,
    /// Inode of the interface's network namespace.
    pub netns: u32,
    pub ifindex: u32,
    /// Interface name, as userspace knows it.
    pub iface: String,
    pub dir: Direction,
    pub family: Family,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol / IPv6 next header (after extension headers).
    pub proto: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification; None for IPv6.
    pub ip_id: Option<u16>,
    pub l4: L4,
    /// IP total length (header included), from the header.
    pub len: u32,
    /// skb->mark when the tracepoint fired.
    pub mark: u32,
    /// The captured bytes, starting at the IP header (for --pcap).
    pub bytes: Arc<[u8]>,
}

/// One FIB table lookup for a packet that arrived on a watched interface
/// (fib:fib_table_lookup, fib6:fib6_table_lookup). A policy-routed packet
/// causes one lookup per table tried: tables whose match is a `throw` route
/// (or that have no match) report an error and the next rule is tried.
#[derive(Clone, Debug, PartialEq)]
pub struct LookupObs {
    pub ts_ns: u64,
    /// Namespace of the packet's input interface, 0 if not known.
    pub netns: u32,
    pub family: Family,
    pub table: u32,
    /// 0 on a match; a negative errno otherwise (-EAGAIN: throw / no match
    /// in this table, -ENETUNREACH, ...).
    pub err: i32,
    pub iif: u32,
    pub oif: u32,
    /// Device of the chosen next hop (empty when there is none).
    pub result_dev: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}
