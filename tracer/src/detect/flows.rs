//! A flow of looped packets: its identity, its counts and the evidence
//! attached to it.
use std::net::IpAddr;

use super::{LoopInfo, PacketBrief, lookups, matching::TeSeen};
use crate::{
    collect::packet::{L4, LookupObs},
    event::Family,
};

/// How long before the original packet's receive its lookups may be
/// timestamped (two CPUs' clocks).
const LOOKUP_SLACK_NS: u64 = 200_000;
/// Lookups kept as candidates per flow.
const LOOKUP_CANDIDATES: usize = 64;

/// The transport part of a flow's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum FlowL4 {
    Echo(u16),
    Ports(u16, u16),
    Icmp(u8, u8),
    Other,
}

/// Which flow a looped packet belongs to: namespace, interface, family and
/// the original packet's source, destination, protocol, echo id or ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct FlowKey {
    pub netns: u32,
    pub ifindex: u32,
    pub family: Family,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub l4: FlowL4,
}

fn family_of(a: IpAddr) -> Family {
    match a {
        IpAddr::V4(_) => Family::Inet,
        IpAddr::V6(_) => Family::Inet6,
    }
}

impl FlowKey {
    /// The flow of a received packet that was looped.
    pub fn of(netns: u32, ifindex: u32, rx: &PacketBrief) -> Self {
        FlowKey {
            netns,
            ifindex,
            family: family_of(rx.dst),
            src: rx.src,
            dst: rx.dst,
            proto: rx.proto,
            l4: match rx.l4 {
                L4::Echo { id, .. } => FlowL4::Echo(id),
                L4::Ports { sport, dport } => FlowL4::Ports(sport, dport),
                L4::Icmp {
                    icmp_type, code, ..
                } => FlowL4::Icmp(icmp_type, code),
                L4::Other => FlowL4::Other,
            },
        }
    }
}

/// An open flow.
pub(super) struct Flow {
    /// What the next finding reports.
    pub info: LoopInfo,
    /// Lookups that may be the original packet's.
    cands: Vec<LookupObs>,
    /// Its `Loop` finding was made.
    pub reported: bool,
    /// When the `Loop` is reported even without a hairpin lookup.
    pub due_ns: u64,
    pub next_summary_ns: u64,
    /// Packets handed to the capture.
    pub captured: usize,
}

impl Flow {
    /// A flow found by its first looped packet (not counted yet).
    pub fn new(
        key: &FlowKey,
        iface: String,
        original: PacketBrief,
        looped: PacketBrief,
        snat: bool,
        due_ns: u64,
    ) -> Self {
        Flow {
            info: LoopInfo {
                netns: key.netns,
                ifindex: key.ifindex,
                iface,
                family: key.family,
                first_seen_ns: original.ts_ns.min(looped.ts_ns),
                last_seen_ns: looped.ts_ns,
                lowest_ttl: looped.ttl,
                original,
                looped,
                snat,
                packets: 0,
                new_packets: 0,
                ttl_exceeded: 0,
                hairpin: None,
                tables_tried: Vec::new(),
            },
            cands: Vec::new(),
            reported: false,
            due_ns,
            next_summary_ns: u64::MAX,
            captured: 0,
        }
    }

    /// Whether a lookup can be one made for a packet of the flow: the
    /// original, a later packet of the same sender (FIB lookup tracing is
    /// switched on by the flow's first looped packet, so often only these
    /// have lookups), or a looped copy that came back in (its source is the
    /// masquerade address).
    fn wants(&self, l: &LookupObs) -> bool {
        let o = &self.info.original;
        let src_ok = l.src == o.src || (self.info.snat && l.src == self.info.looped.src);
        let ports_ok = match o.l4 {
            L4::Ports { sport, dport } => {
                (l.sport, l.dport) == (0, 0) || (l.sport, l.dport) == (sport, dport)
            }
            _ => true,
        };
        (l.netns == 0 || l.netns == self.info.netns)
            && l.family == self.info.family
            && l.iif == self.info.ifindex
            && src_ok
            && l.dst == o.dst
            && (l.proto == 0 || l.proto == o.proto)
            && ports_ok
            && l.ts_ns >= o.ts_ns.saturating_sub(LOOKUP_SLACK_NS)
    }

    /// Take a lookup as evidence if it is the original packet's.
    pub fn offer_lookup(&mut self, l: &LookupObs) {
        if self.cands.len() >= LOOKUP_CANDIDATES || !self.wants(l) || self.cands.contains(l) {
            return;
        }
        self.cands.push(l.clone());
        let (tables, hairpin) = lookups::select(&self.cands, self.info.ifindex, &self.info.iface);
        self.info.tables_tried = tables;
        self.info.hairpin = hairpin;
    }

    /// Count a time-exceeded message seen on the interface if it is about
    /// this flow.
    pub fn offer_te(&mut self, te: &TeSeen, window_ns: u64) {
        if te.ts_ns.saturating_add(window_ns) < self.info.first_seen_ns {
            return;
        }
        let about_us = match te.about {
            Some(d) => d == self.info.original.dst,
            None => te.dst == self.info.original.src || te.dst == self.info.looped.src,
        };
        if about_us {
            self.info.ttl_exceeded += 1;
        }
    }

    /// Count a looped copy.
    pub fn count_looped(&mut self, tx: &PacketBrief) {
        self.info.packets += 1;
        self.info.new_packets += 1;
        self.info.lowest_ttl = self.info.lowest_ttl.min(tx.ttl);
        self.info.last_seen_ns = self.info.last_seen_ns.max(tx.ts_ns);
    }

    /// The info for a finding; packets after it are new.
    pub fn report(&mut self) -> LoopInfo {
        let info = self.info.clone();
        self.info.new_packets = 0;
        info
    }
}
