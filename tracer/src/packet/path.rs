//! The packet path inside `watch`: watched interfaces, decoding, the loop
//! detector, and turning its findings into `loop`, `loop_summary` and
//! `loop_end` events tied to their cause.
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use anyhow::Result;
use tracer_common::{FibLookupEvent, PacketEvent, WatchKey};

use super::{
    cause::{self, Selector},
    suspect::{self, Changes, Decision},
    watchlist::{IfaceSpec, WatchChange, WatchList},
};
use crate::{
    clock::Clock,
    collect::{packet::L4, packet_decode as decode},
    correlate::mirror::NsMirror,
    detect::{Detector, DetectorConfig, Finding, LoopInfo},
    event::{
        Body, Event, Kind, LoopLookup, LoopReport, Netns, PacketBrief, Rule, Source, TableTry,
    },
    netlink::{
        decode::{NlItem, NlObj},
        names::TableNames,
    },
};

/// What the caller knows about a namespace, for explaining a loop.
pub struct NsView<'a> {
    pub netns: Netns,
    pub mirror: Option<&'a NsMirror>,
    /// The namespace's rules now (a fresh dump), if it could be read.
    pub rules: Option<Vec<Rule>>,
    /// The kernel's answer to "which route would the original packet take
    /// now" (used when no FIB lookup was seen for the packet).
    pub route_now: Option<crate::event::Route>,
}

/// Explanation computed once per flow and repeated in its summaries.
#[derive(Clone)]
struct Explained {
    netns: Netns,
    /// The mechanism that saw the loop's packets (when it was found).
    source: Source,
    lookup: Option<LoopLookup>,
    suspect: Option<Box<Event>>,
    advice: String,
}

pub struct PacketPath {
    pub watch: WatchList,
    detector: Detector,
    own: HashMap<u32, HashSet<IpAddr>>,
    explained: HashMap<FlowId, Explained>,
    /// Rule and route changes seen, for naming a loop's suspect.
    pub changes: Changes,
    /// Records that could not be decoded (not IP, not captured).
    pub undecoded: u64,
}

/// One looping flow: where it loops and the original packet's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowId {
    netns: u32,
    ifindex: u32,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: Option<(u16, u16)>,
}

fn flow_id(l: &LoopInfo) -> FlowId {
    FlowId {
        netns: l.netns,
        ifindex: l.ifindex,
        src: l.original.src,
        dst: l.original.dst,
        proto: l.original.proto,
        l4: flow_l4(&l.original.l4),
    }
}

fn flow_l4(l4: &L4) -> Option<(u16, u16)> {
    match *l4 {
        L4::Echo { id, .. } => Some((id, 0)),
        L4::Ports { sport, dport } => Some((sport, dport)),
        _ => None,
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        other => other.to_string(),
    }
}

fn brief(p: &crate::detect::PacketBrief) -> PacketBrief {
    let (icmp_id, icmp_seq, sport, dport) = match p.l4 {
        L4::Echo { id, seq, .. } => (Some(id), Some(seq), None, None),
        L4::Ports { sport, dport } => (None, None, Some(sport), Some(dport)),
        _ => (None, None, None, None),
    };
    PacketBrief {
        src: p.src.to_string(),
        dst: p.dst.to_string(),
        proto: proto_name(p.proto),
        ttl: p.ttl,
        id: p.ip_id,
        len: p.len,
        icmp_id,
        icmp_seq,
        sport,
        dport,
    }
}

fn errno_name(err: i32) -> Option<String> {
    (err != 0).then(|| crate::netlink::names::errno_name(err).into_owned())
}

impl PacketPath {
    pub fn new(
        watch: WatchList,
        capture: bool,
        summary_every: Duration,
        end_after: Duration,
    ) -> Result<Self> {
        Ok(PacketPath {
            watch,
            detector: Detector::new(DetectorConfig {
                summary_every,
                end_after,
                // Packets are kept for the pcap file only.
                capture_per_flow: if capture {
                    DetectorConfig::default().capture_per_flow
                } else {
                    0
                },
                ..DetectorConfig::default()
            }),
            own: HashMap::new(),
            explained: HashMap::new(),
            changes: Changes::default(),
            undecoded: 0,
        })
    }

    /// Re-resolves the watched interfaces against the namespaces' links.
    pub fn sync(
        &mut self,
        mut ns_inode: impl FnMut(Option<&str>) -> Option<u32>,
        mirror: impl Fn(u32) -> Option<HashMap<String, u32>>,
    ) -> Vec<WatchChange> {
        self.watch.sync(|spec: &IfaceSpec| {
            let netns = ns_inode(spec.netns.as_deref())?;
            let ifindex = *mirror(netns)?.get(&spec.name)?;
            Some(WatchKey { netns, ifindex })
        })
    }

    /// The namespace's addresses, from a dump.
    pub fn load_addrs(&mut self, netns: u32, items: &[NlItem]) {
        let set: HashSet<IpAddr> = items.iter().filter_map(addr_of).collect();
        self.detector.set_own_addrs(netns, set.iter().copied());
        self.own.insert(netns, set);
    }

    /// An address notification.
    pub fn addr_change(&mut self, netns: u32, item: &NlItem) {
        let NlObj::Addr { op, .. } = &item.obj else {
            return;
        };
        let Some(a) = addr_of(item) else { return };
        let set = self.own.entry(netns).or_default();
        match op {
            crate::event::Op::Add => set.insert(a),
            crate::event::Op::Del => set.remove(&a),
        };
        self.detector.set_own_addrs(netns, set.iter().copied());
    }

    /// A packet record. The kernel sends one only for a loop candidate (a
    /// reception paired with its transmission, or an ICMP time-exceeded),
    /// so the first one switches FIB lookup tracing on: the loop's next
    /// packets come with the lookups that routed them.
    pub fn packet(&mut self, ev: &PacketEvent) {
        self.watch.loop_candidate(ev.hdr.ts_ns);
        self.detector.set_lookups_expected(self.watch.fib_on());
        let key = WatchKey {
            netns: ev.hdr.netns,
            ifindex: ev.ifindex,
        };
        let name = self.watch.name(&key).unwrap_or("?").to_string();
        match decode::packet(ev, &name) {
            Ok(p) => self.detector.packet(&p),
            Err(_) => self.undecoded += 1,
        }
    }

    pub fn lookup(&mut self, ev: &FibLookupEvent) {
        if let Some(l) = decode::lookup(ev) {
            self.detector.lookup(&l);
        }
    }

    /// Findings due now.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Finding> {
        self.watch.expire_fib(now_ns);
        self.watch.arm_tick(now_ns);
        self.detector.set_lookups_expected(self.watch.fib_on());
        self.detector.tick(now_ns)
    }

    /// Everything still open, ended (shutdown).
    pub fn finish(&mut self, now_ns: u64) -> Vec<Finding> {
        self.detector.finish(now_ns)
    }

    /// The loop packets captured since the last call (kept only with
    /// `--pcap`), with their wall-clock times in ns since the epoch.
    pub fn take_capture(&mut self, clock: &Clock) -> Vec<(i128, Arc<[u8]>)> {
        self.detector
            .take_capture()
            .into_iter()
            .map(|(ts, bytes)| (clock.unix_ns(ts), bytes))
            .collect()
    }

    /// Whether a finding needs the namespace's rules (a new loop does).
    pub fn needs_view(f: &Finding) -> bool {
        matches!(f, Finding::Loop(_))
    }

    /// The event for a finding. `view` describes the flow's namespace (only
    /// read for new loops; summaries and ends repeat the explanation).
    pub fn event(
        &mut self,
        f: Finding,
        clock: &Clock,
        tables: &TableNames,
        view: Option<NsView<'_>>,
    ) -> Event {
        let (kind, info) = match f {
            Finding::Loop(i) => (Kind::Loop, i),
            Finding::Summary(i) => (Kind::LoopSummary, i),
            Finding::End(i) => (Kind::LoopEnd, i),
        };
        let id = flow_id(&info);
        let explained = match (kind, self.explained.get(&id)) {
            (Kind::Loop, _) | (_, None) => {
                let e = self.explain(&info, tables, view);
                self.explained.insert(id, e.clone());
                e
            }
            (_, Some(e)) => {
                // Lookups that arrived since the flow was explained.
                let mut e = e.clone();
                if refresh_lookup(&mut e, &info, tables) {
                    self.explained.insert(id, e.clone());
                }
                e
            }
        };
        if kind == Kind::LoopEnd {
            self.explained.remove(&id);
        }
        Event {
            ts: clock.wall(Some(info.last_seen_ns)),
            kind,
            source: explained.source,
            body: Body::Loop(Box::new(LoopReport {
                netns: explained.netns,
                iface: info.iface.clone(),
                family: info.family,
                original: brief(&info.original),
                looped: brief(&info.looped),
                snat: info.snat,
                packets: info.packets,
                new_packets: info.new_packets,
                lowest_ttl: info.lowest_ttl,
                ttl_exceeded: info.ttl_exceeded,
                first_seen: clock.wall(Some(info.first_seen_ns)),
                last_seen: clock.wall(Some(info.last_seen_ns)),
                lookup: explained.lookup,
                suspect: explained.suspect,
                advice: explained.advice,
            })),
        }
    }

    fn explain(&self, info: &LoopInfo, tables: &TableNames, view: Option<NsView<'_>>) -> Explained {
        let (netns, mirror, rules, route_now) = match view {
            Some(v) => (v.netns, v.mirror, v.rules, v.route_now),
            None => (
                Netns {
                    inode: Some(info.netns),
                    name: None,
                },
                None,
                None,
                None,
            ),
        };
        let tables_tried = tables_tried(info);
        let dst = info.original.dst;
        // The table that matched: the hairpin lookup, else the last
        // successful lookup seen.
        let table = info
            .hairpin
            .as_ref()
            .map(|h| h.table)
            .or_else(|| {
                info.tables_tried
                    .iter()
                    .rev()
                    .find(|(_, e)| *e == 0)
                    .map(|(t, _)| *t)
            })
            .or_else(|| route_now.as_ref().and_then(|r| r.table));
        let chosen = table
            .and_then(|t| mirror.and_then(|m| longest_match(m, t, dst)))
            .or_else(|| route_now.map(|r| named(r, mirror)));
        let route_text = chosen.as_ref().map(crate::describe::route_short);
        let packet = Selector {
            family: info.family,
            src: info.original.src,
            dst,
            iif: &info.iface,
            mark: info.original.mark,
            proto: info.original.proto,
        };
        let rule_priority = match (table, rules.as_deref()) {
            (Some(t), Some(rules)) => cause::rule_priority(rules, &packet, t),
            _ => None,
        };
        let suspect = table
            .and_then(|t| {
                self.changes.suspect(&Decision {
                    netns: info.netns,
                    table: t,
                    chosen: chosen.as_ref(),
                    rule_priority,
                    packet: &packet,
                })
            })
            .cloned();
        let lookup = (table.is_some() || !tables_tried.is_empty()).then(|| LoopLookup {
            table,
            table_name: table.and_then(|t| tables.name(t)),
            rule_priority,
            route: route_text.clone(),
            result_dev: info
                .hairpin
                .as_ref()
                .map(|h| h.result_dev.clone())
                .filter(|d| !d.is_empty())
                .or_else(|| chosen.as_ref().and_then(|r| r.dev.clone())),
            tables_tried,
        });
        let advice = suspect::advice(
            dst,
            &info.iface,
            table,
            route_text.as_deref(),
            suspect.as_ref(),
        );
        let key = WatchKey {
            netns: info.netns,
            ifindex: info.ifindex,
        };
        Explained {
            netns,
            source: self.watch.source(&key).unwrap_or(Source::Tracepoint),
            lookup,
            suspect: suspect.map(Box::new),
            advice,
        }
    }
}

/// The lookups of a loop as the event reports them.
fn tables_tried(info: &LoopInfo) -> Vec<TableTry> {
    info.tables_tried
        .iter()
        .map(|(t, e)| TableTry {
            table: *t,
            err: errno_name(*e),
        })
        .collect()
}

/// Adds to an explanation the FIB lookups that arrived after it was made
/// (a summary or end of the loop carries them); true if it changed.
fn refresh_lookup(e: &mut Explained, info: &LoopInfo, tables: &TableNames) -> bool {
    let tried = tables_tried(info);
    if tried.is_empty() {
        return false;
    }
    let hairpin_dev = info
        .hairpin
        .as_ref()
        .map(|h| h.result_dev.clone())
        .filter(|d| !d.is_empty());
    match &mut e.lookup {
        Some(l) if l.tables_tried == tried => false,
        Some(l) => {
            l.tables_tried = tried;
            if l.table.is_none() {
                l.table = info.hairpin.as_ref().map(|h| h.table);
                l.table_name = l.table.and_then(|t| tables.name(t));
            }
            if l.result_dev.is_none() {
                l.result_dev = hairpin_dev;
            }
            true
        }
        None => {
            let table = info.hairpin.as_ref().map(|h| h.table);
            e.lookup = Some(LoopLookup {
                table,
                table_name: table.and_then(|t| tables.name(t)),
                rule_priority: None,
                route: None,
                result_dev: hairpin_dev,
                tables_tried: tried,
            });
            true
        }
    }
}

/// The most specific route of `table` in the mirror covering `dst`, with
/// its device named.
fn longest_match(m: &NsMirror, table: u32, dst: IpAddr) -> Option<crate::event::Route> {
    Some(named(m.longest_match(table, dst)?, Some(m)))
}

/// `r` with its device named from the mirror when the route gave only an
/// interface index.
fn named(mut r: crate::event::Route, mirror: Option<&NsMirror>) -> crate::event::Route {
    r.name_devs(|i| mirror.and_then(|m| m.dev(i)));
    r
}

/// The loop a finding is about.
pub fn finding_info(f: &Finding) -> &LoopInfo {
    match f {
        Finding::Loop(i) | Finding::Summary(i) | Finding::End(i) => i,
    }
}

/// The route query for a loop's original packet.
pub fn route_query(info: &LoopInfo) -> crate::netlink::socket::RouteQuery {
    crate::netlink::socket::RouteQuery {
        src: info.original.src,
        dst: info.original.dst,
        iif: info.ifindex,
        mark: info.original.mark,
    }
}

fn addr_of(item: &NlItem) -> Option<IpAddr> {
    match &item.obj {
        NlObj::Addr { addr: Some(a), .. } => a.split('/').next()?.parse().ok(),
        _ => None,
    }
}
