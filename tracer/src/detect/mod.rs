//! Forwarding-loop detection from the packet path's observations.
//!
//! A router whose routing sends a packet back out of the interface it came
//! in on (a subnet router whose table 52 lost its `throw` route sends LAN
//! traffic from the tailnet back into `tailscale0`) shows one pattern: a
//! packet received on an interface is transmitted on the same interface
//! moments later with a lower TTL, its source unchanged or rewritten to one
//! of the router's own addresses (masquerade). That pattern raises a loop.
//! The FIB lookups made for the packet (which tables were tried, and the
//! one that chose the interface it came from) and ICMP time-exceeded
//! messages are evidence attached to it.
//!
//! Packets of both directions are kept for a short window, so a transmit
//! delivered before its receive (two CPUs) still matches. Loops are grouped
//! into flows (namespace, interface, original source, destination,
//! protocol, echo id or ports): one `Loop` finding per flow, a `Summary`
//! while it goes on and an `End` when it stops. Time is passed in; nothing
//! here reads a clock, so it is testable.
#[cfg(test)]
mod evidence_tests;
mod finding;
#[cfg(test)]
mod flow_tests;
mod flows;
#[cfg(test)]
mod kernel_key_tests;
#[cfg(test)]
mod lookup_wait_tests;
mod lookups;
#[cfg(test)]
mod loop_tests;
mod matching;
#[cfg(test)]
mod passes_tests;
mod recent;
#[cfg(test)]
mod test_stream;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use crate::collect::packet::{Direction, LookupObs, PacketObs};
pub use finding::{Finding, LoopInfo, PacketBrief};
use flows::{Flow, FlowKey};
use lookups::Lookups;
use matching::{MatchKey, TeSeen};
use recent::{Entry, Recent};

/// Recent packets kept per interface and direction (64k per interface).
const TABLE_CAP: usize = 32 * 1024;
/// Recent FIB lookups kept (all interfaces).
const LOOKUP_CAP: usize = 64 * 1024;
/// Recent ICMP time-exceeded messages kept per interface.
const TE_CAP: usize = 4096;
/// Open flows; beyond this, new flows are not tracked until some end.
const MAX_FLOWS: usize = 64 * 1024;
/// Captured packets waiting for `take_capture`, all flows together.
const CAPTURE_CAP: usize = 64 * 1024;
/// How long a new loop waits for its FIB lookups before it is reported
/// without them (it is reported at once when the hairpin lookup is known),
/// when no lookups can come (FIB lookup tracing is off or unavailable).
const REPORT_DELAY_NS: u64 = 100_000_000;
/// The same while FIB lookup tracing is on: it is switched on by a flow's
/// first looped packet, so the lookups may come only with the flow's next
/// packet (the next pass of a loop, or the sender's next packet). The
/// first `loop` event waits this long for them, which keeps it within 1 s
/// of the first looped packet.
const LOOKUP_WAIT_NS: u64 = 600_000_000;

/// Tuning of the detector.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// How far apart a received packet and its looped copy may be (either
    /// order); recent packets and lookups are kept about twice as long.
    pub window: Duration,
    /// Interval of `Summary` findings while a loop goes on.
    pub summary_every: Duration,
    /// A flow with no looped packet for this long has ended.
    pub end_after: Duration,
    /// Packets kept for the pcap per flow (originals and looped copies
    /// together); 0 keeps none.
    pub capture_per_flow: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            // The packet programs pair within the same window.
            window: Duration::from_nanos(tracer_common::PAIR_WINDOW_NS),
            summary_every: Duration::from_secs(10),
            end_after: Duration::from_secs(5),
            capture_per_flow: 1000,
        }
    }
}

/// Recent traffic of one interface.
struct Iface {
    name: String,
    rx: Recent,
    tx: Recent,
    te: VecDeque<TeSeen>,
}

impl Iface {
    fn new(name: &str) -> Self {
        Iface {
            name: name.to_string(),
            rx: Recent::new(TABLE_CAP),
            tx: Recent::new(TABLE_CAP),
            te: VecDeque::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.rx.is_empty() && self.tx.is_empty() && self.te.is_empty()
    }
}

/// The loop detector: feed it packets and lookups, tick it, collect
/// findings.
pub struct Detector {
    cfg: DetectorConfig,
    window_ns: u64,
    own: HashMap<u32, HashSet<IpAddr>>,
    ifaces: HashMap<(u32, u32), Iface>,
    lookups: Lookups,
    flows: HashMap<FlowKey, Flow>,
    /// Open flows by the (src, dst) of their packets (the original's, and
    /// the looped copy's when it was masqueraded and comes back in): the
    /// flows a FIB lookup may be evidence for.
    by_addrs: HashMap<(IpAddr, IpAddr), Vec<FlowKey>>,
    /// FIB lookups can arrive (lookup tracing is on): a new loop waits
    /// [`LOOKUP_WAIT_NS`] for them rather than [`REPORT_DELAY_NS`].
    lookups_expected: bool,
    capture: Vec<(u64, Arc<[u8]>)>,
    /// The latest time seen (tick or event timestamp).
    clock_ns: u64,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Detector {
    /// A detector with no own addresses known yet.
    pub fn new(cfg: DetectorConfig) -> Self {
        Detector {
            window_ns: ns(cfg.window),
            cfg,
            own: HashMap::new(),
            ifaces: HashMap::new(),
            lookups: Lookups::new(LOOKUP_CAP),
            flows: HashMap::new(),
            by_addrs: HashMap::new(),
            lookups_expected: false,
            capture: Vec::new(),
            clock_ns: 0,
        }
    }

    /// The router's own addresses in a namespace (for recognising SNAT and
    /// traffic to the router itself); replaces what was set before.
    pub fn set_own_addrs(&mut self, netns: u32, addrs: impl IntoIterator<Item = IpAddr>) {
        self.own.insert(netns, addrs.into_iter().collect());
    }

    /// Whether FIB lookups for looping packets can arrive now (the lookup
    /// tracepoints are attached): a new loop then waits up to
    /// [`LOOKUP_WAIT_NS`] for them before it is reported without them.
    pub fn set_lookups_expected(&mut self, on: bool) {
        self.lookups_expected = on;
    }

    /// A packet seen on a watched interface, in any order relative to the
    /// others (within the window).
    pub fn packet(&mut self, p: &PacketObs) {
        self.clock_ns = self.clock_ns.max(p.ts_ns);
        let key = (p.netns, p.ifindex);
        let iface = self
            .ifaces
            .entry(key)
            .or_insert_with(|| Iface::new(&p.iface));
        if iface.name != p.iface {
            iface.name.clone_from(&p.iface);
        }
        if p.l4.is_time_exceeded() {
            self.time_exceeded(key, p);
        }
        if !matching::forwardable(p.dst) {
            return;
        }
        let own = self.own.get(&p.netns);
        if p.dir == Direction::Rx && own.is_some_and(|o| o.contains(&p.dst)) {
            // Addressed to the router: delivered, not forwarded.
            return;
        }
        let entry = Entry::new(PacketBrief::of(p), p.bytes.clone());
        match p.dir {
            Direction::Rx => self.rx(key, entry),
            Direction::Tx => self.tx(key, entry),
        }
    }

    /// A FIB lookup made for a packet that arrived on a watched interface.
    pub fn lookup(&mut self, l: &LookupObs) {
        self.clock_ns = self.clock_ns.max(l.ts_ns);
        self.lookups.push(l.clone());
        if let Some(waiting) = self.by_addrs.get(&(l.src, l.dst)) {
            for fk in waiting {
                if let Some(flow) = self.flows.get_mut(fk) {
                    flow.offer_lookup(l);
                }
            }
        }
    }

    /// Advance time (CLOCK_BOOTTIME ns, the clock of the observations'
    /// timestamps): prune old state, and report new loops, summaries of
    /// loops going on and loops that ended.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Finding> {
        self.clock_ns = self.clock_ns.max(now_ns);
        self.prune();
        let summary_ns = ns(self.cfg.summary_every);
        let end_ns = ns(self.cfg.end_after);
        let mut out = Vec::new();
        let mut ended = Vec::new();
        for (fk, flow) in self.flows.iter_mut() {
            if now_ns >= flow.info.last_seen_ns.saturating_add(end_ns) {
                if !flow.reported {
                    out.push((*fk, Finding::Loop(flow.report())));
                }
                out.push((*fk, Finding::End(flow.report())));
                ended.push(*fk);
            } else if !flow.reported {
                if now_ns >= flow.due_ns || flow.info.hairpin.is_some() {
                    out.push((*fk, Finding::Loop(flow.report())));
                    flow.reported = true;
                    flow.next_summary_ns = now_ns.saturating_add(summary_ns);
                }
            } else if now_ns >= flow.next_summary_ns {
                if flow.info.new_packets > 0 {
                    out.push((*fk, Finding::Summary(flow.report())));
                }
                flow.next_summary_ns = now_ns.saturating_add(summary_ns);
            }
        }
        for fk in ended {
            self.forget(&fk);
        }
        sorted(out)
    }

    /// Packets of detected loops (originals and looped copies) not taken
    /// yet, in timestamp order, for the pcap: (ts_ns, bytes from the IP
    /// header).
    pub fn take_capture(&mut self) -> Vec<(u64, Arc<[u8]>)> {
        let mut c = std::mem::take(&mut self.capture);
        c.sort_by_key(|(ts, _)| *ts);
        c
    }

    /// Shutdown: what `tick` reports, then every flow still open ends.
    pub fn finish(&mut self, now_ns: u64) -> Vec<Finding> {
        let mut out = self.tick(now_ns);
        let mut rest = Vec::new();
        for (fk, mut flow) in self.flows.drain() {
            if !flow.reported {
                rest.push((fk, Finding::Loop(flow.report())));
            }
            rest.push((fk, Finding::End(flow.report())));
        }
        self.by_addrs.clear();
        out.extend(sorted(rest));
        out
    }

    /// A received packet: kept, and matched against recent transmits.
    fn rx(&mut self, key: (u32, u32), mut entry: Entry) {
        let w = self.window_ns;
        let Some(iface) = self.ifaces.get_mut(&key) else {
            return;
        };
        let mk = MatchKey::of(&entry.p);
        // A looped copy coming back in (the loop goes through another
        // hop): it stays in the flow it left in.
        for s in iface.tx.bucket(&mk) {
            if let Some(t) = iface.tx.get(s)
                && t.flow.is_some()
                && matching::same_copy(&t.p, &entry.p, w)
            {
                entry.flow = t.flow;
                break;
            }
        }
        let own = self.own.get(&key.0);
        let best = iface
            .tx
            .bucket(&mk)
            .into_iter()
            .filter_map(|s| {
                let t = iface.tx.get(s)?;
                if t.used {
                    return None;
                }
                let snat = matching::looped(&entry.p, &t.p, own, w)?;
                // The copy with the highest TTL is the first hop's.
                let rank = (u8::MAX - t.p.ttl, t.p.ts_ns.abs_diff(entry.p.ts_ns));
                Some((rank, s, snat))
            })
            .min_by_key(|(rank, _, _)| *rank);
        let rx_seq = iface.rx.push(entry);
        if let Some((_, tx_seq, snat)) = best {
            self.matched(key, rx_seq, tx_seq, snat);
        }
    }

    /// A transmitted packet: kept, and matched against recent receives.
    fn tx(&mut self, key: (u32, u32), entry: Entry) {
        let w = self.window_ns;
        let Some(iface) = self.ifaces.get_mut(&key) else {
            return;
        };
        let mk = MatchKey::of(&entry.p);
        let own = self.own.get(&key.0);
        let best = iface
            .rx
            .bucket(&mk)
            .into_iter()
            .filter_map(|s| {
                let r = iface.rx.get(s)?;
                let snat = matching::looped(&r.p, &entry.p, own, w)?;
                // Prefer a receive not matched yet, then the one just
                // before this copy (lowest TTL above it), then the nearest.
                let rank = (r.used, r.p.ttl, r.p.ts_ns.abs_diff(entry.p.ts_ns));
                Some((rank, s, snat))
            })
            .min_by_key(|(rank, _, _)| *rank);
        let tx_seq = iface.tx.push(entry);
        if let Some((_, rx_seq, snat)) = best {
            self.matched(key, rx_seq, tx_seq, snat);
        }
    }

    /// A received packet and its looped copy: count it in its flow,
    /// creating the flow if new.
    fn matched(&mut self, key: (u32, u32), rx_seq: u64, tx_seq: u64, snat: bool) {
        let w = self.window_ns;
        let Some(iface) = self.ifaces.get_mut(&key) else {
            return;
        };
        let (Some(rx), Some(tx)) = (iface.rx.get(rx_seq), iface.tx.get(tx_seq)) else {
            return;
        };
        let (rx_p, rx_bytes, rx_flow, rx_captured) =
            (rx.p.clone(), rx.bytes.clone(), rx.flow, rx.captured);
        let (tx_p, tx_bytes) = (tx.p.clone(), tx.bytes.clone());
        let fk = rx_flow.unwrap_or_else(|| FlowKey::of(key.0, key.1, &rx_p));
        if !self.flows.contains_key(&fk) {
            if self.flows.len() >= MAX_FLOWS {
                log::debug!("loop detector: {MAX_FLOWS} flows open, not tracking another");
                return;
            }
            let wait = if self.lookups_expected {
                LOOKUP_WAIT_NS
            } else {
                REPORT_DELAY_NS
            };
            let due = self.clock_ns.saturating_add(wait);
            let mut flow = Flow::new(
                &fk,
                iface.name.clone(),
                rx_p.clone(),
                tx_p.clone(),
                snat,
                due,
            );
            for l in self.lookups.iter() {
                flow.offer_lookup(l);
            }
            for te in &iface.te {
                flow.offer_te(te, w);
            }
            for addrs in [(rx_p.src, rx_p.dst), (tx_p.src, tx_p.dst)] {
                let v = self.by_addrs.entry(addrs).or_default();
                if !v.contains(&fk) {
                    v.push(fk);
                }
            }
            self.flows.insert(fk, flow);
        }
        let Some(flow) = self.flows.get_mut(&fk) else {
            return;
        };
        flow.count_looped(&tx_p);
        if let Some(t) = iface.tx.get_mut(tx_seq) {
            t.used = true;
            t.flow = Some(fk);
        }
        if let Some(r) = iface.rx.get_mut(rx_seq) {
            r.used = true;
            r.flow.get_or_insert(fk);
        }
        // The copy may already have come back in (events reordered).
        for s in iface.rx.bucket(&MatchKey::of(&tx_p)) {
            if let Some(r) = iface.rx.get_mut(s)
                && r.flow.is_none()
                && !r.used
                && matching::same_copy(&tx_p, &r.p, w)
            {
                r.flow = Some(fk);
            }
        }
        let cap = self.cfg.capture_per_flow;
        if !rx_captured && flow.captured < cap && self.capture.len() < CAPTURE_CAP {
            self.capture.push((rx_p.ts_ns, rx_bytes));
            flow.captured += 1;
            if let Some(r) = iface.rx.get_mut(rx_seq) {
                r.captured = true;
            }
        }
        if flow.captured < cap && self.capture.len() < CAPTURE_CAP {
            self.capture.push((tx_p.ts_ns, tx_bytes));
            flow.captured += 1;
        }
    }

    /// An ICMP time-exceeded message on an interface: counted for the
    /// interface's flows it is about, and kept for flows found later.
    fn time_exceeded(&mut self, key: (u32, u32), p: &PacketObs) {
        let te = TeSeen::of(p);
        for (fk, flow) in self.flows.iter_mut() {
            if (fk.netns, fk.ifindex) == key {
                flow.offer_te(&te, self.window_ns);
            }
        }
        if let Some(iface) = self.ifaces.get_mut(&key) {
            if iface.te.len() >= TE_CAP {
                iface.te.pop_front();
            }
            iface.te.push_back(te);
        }
    }

    /// Drop what is too old to match anything.
    fn prune(&mut self) {
        let before = self
            .clock_ns
            .saturating_sub(self.window_ns.saturating_mul(2));
        for iface in self.ifaces.values_mut() {
            iface.rx.prune(before);
            iface.tx.prune(before);
            while iface.te.front().is_some_and(|t| t.ts_ns < before) {
                iface.te.pop_front();
            }
        }
        self.ifaces.retain(|_, i| !i.is_empty());
        self.lookups.prune(before);
    }

    /// An ended flow: removed with its index entries.
    fn forget(&mut self, fk: &FlowKey) {
        let Some(flow) = self.flows.remove(fk) else {
            return;
        };
        let (o, l) = (&flow.info.original, &flow.info.looped);
        for addrs in [(o.src, o.dst), (l.src, l.dst)] {
            if let Some(v) = self.by_addrs.get_mut(&addrs) {
                v.retain(|k| k != fk);
                if v.is_empty() {
                    self.by_addrs.remove(&addrs);
                }
            }
        }
    }
}

/// Findings in the order their flows began (a flow's own findings keep
/// their order).
fn sorted(mut out: Vec<(FlowKey, Finding)>) -> Vec<Finding> {
    out.sort_by(|(ka, a), (kb, b)| (a.info().first_seen_ns, ka).cmp(&(b.info().first_seen_ns, kb)));
    out.into_iter().map(|(_, f)| f).collect()
}
