//! `--iface [NETNS:]IFACE`: which interfaces the packet programs watch, kept
//! in step with the kernel as interfaces and namespaces come and go.
use std::collections::HashMap;

use tracer_common::{WATCH_BITMAP_WORDS, WatchKey, watch_bit};

use super::{
    arming::{Armer, Arming},
    expiry::Expiries,
};
pub use crate::iface::IfaceSpec;
use crate::{
    bpf::packet_hooks::{PacketHooks, Via},
    event::Source,
};

/// The watched interfaces, and the programs and maps that watch them.
pub struct WatchList {
    specs: Vec<IfaceSpec>,
    hooks: PacketHooks,
    /// The ifindex bitmap (tracepoint programs) as last written.
    bits: [u64; WATCH_BITMAP_WORDS as usize],
    /// Installed keys: the spec each stands for, and how it is watched.
    active: HashMap<WatchKey, (IfaceSpec, Via)>,
    /// While the FIB lookup programs are attached: until when (monotonic
    /// ns) they stay, unless more loop candidates come.
    fib_until: Option<u64>,
    /// The FIB lookup programs are attached now.
    fib_on: bool,
    /// When the tc programs should be attached.
    armer: Armer,
    /// On demand: the ICMP time-exceeded counters of each namespace with
    /// an interface watched by tc (None: they could not be read).
    expiries: HashMap<u32, Option<Expiries>>,
}

/// How long the FIB lookup programs stay attached after the last packet
/// record (a loop candidate) arrived.
const FIB_LINGER_NS: u64 = 30_000_000_000;

/// A change in what is watched, for the log.
#[derive(Debug, PartialEq)]
pub enum WatchChange {
    /// Watched with the tc programs (true) or the tracepoint programs.
    Added(IfaceSpec, WatchKey, bool),
    Removed(IfaceSpec, WatchKey),
}

impl WatchList {
    /// `now_ns`: the monotonic time at start-up (it arms the programs on
    /// demand as a change does).
    pub fn new(specs: Vec<IfaceSpec>, hooks: PacketHooks, arming: Arming, now_ns: u64) -> Self {
        WatchList {
            armer: Armer::new(arming, now_ns),
            specs,
            hooks,
            bits: [0; WATCH_BITMAP_WORDS as usize],
            active: HashMap::new(),
            fib_until: None,
            fib_on: false,
            expiries: HashMap::new(),
        }
    }

    pub fn specs(&self) -> &[IfaceSpec] {
        &self.specs
    }

    /// Installs the interfaces `resolve` can find now and removes those it
    /// no longer finds. `resolve` gives (namespace inode, ifindex).
    pub fn sync(
        &mut self,
        mut resolve: impl FnMut(&IfaceSpec) -> Option<WatchKey>,
    ) -> Vec<WatchChange> {
        let mut want: HashMap<WatchKey, IfaceSpec> = HashMap::new();
        for spec in &self.specs {
            if let Some(key) = resolve(spec) {
                want.insert(key, spec.clone());
            }
        }
        let mut changes = Vec::new();
        let gone: Vec<WatchKey> = self
            .active
            .iter()
            .filter(|(k, (spec, _))| want.get(k) != Some(spec))
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            if let Some((spec, via)) = self.active.remove(&key) {
                if let Via::Tracepoint = via {
                    let _ = self.hooks.ifaces.remove(&key);
                }
                self.hooks.unwatch(&key, via);
                changes.push(WatchChange::Removed(spec, key));
            }
        }
        for (key, spec) in want {
            if self.active.contains_key(&key) {
                continue;
            }
            match self.install(&spec, key) {
                Ok(via) => {
                    if matches!(self.armer.mode(), Arming::OnDemand { asked: true, .. })
                        && !via.is_tc()
                    {
                        log::warn!(
                            "{spec}: --packet-programs on-demand needs tc programs of its own; the packet tracepoints that watch it stay attached"
                        );
                    }
                    let tc = via.is_tc();
                    changes.push(WatchChange::Added(spec.clone(), key, tc));
                    self.active.insert(key, (spec, via));
                }
                Err(e) => log::warn!("cannot watch {spec}: {e:#}"),
            }
        }
        self.write_bits();
        self.sync_expiries();
        changes
    }

    /// On demand, opens the time-exceeded counters of each namespace with
    /// an interface watched by tc, and drops those of namespaces left.
    fn sync_expiries(&mut self) {
        if self.armer.mode() == Arming::Always {
            return;
        }
        let mut want: HashMap<u32, &IfaceSpec> = HashMap::new();
        for (key, (spec, via)) in &self.active {
            if via.is_tc() {
                want.entry(key.netns).or_insert(spec);
            }
        }
        self.expiries.retain(|ns, _| want.contains_key(ns));
        for (ns, spec) in want {
            self.expiries.entry(ns).or_insert_with(|| {
                Expiries::open(spec)
                    .inspect_err(|e| {
                        log::warn!(
                            "{spec}: cannot read its namespace's ICMP counters ({e:#}); a loop with no change behind it is found by sampling alone"
                        )
                    })
                    .ok()
            });
        }
    }

    /// Attaches what watches `key`; an interface watched through the
    /// tracepoints also goes into their map.
    fn install(&mut self, spec: &IfaceSpec, key: WatchKey) -> anyhow::Result<Via> {
        let via = self.hooks.watch(spec, key)?;
        if let Via::Tracepoint = via {
            self.hooks.ifaces.insert(key, 1, 0)?;
        }
        Ok(via)
    }

    /// Brings the tracepoint programs' ifindex bitmap in step with the
    /// interfaces they watch. Bits are set after their keys are installed
    /// and cleared after their keys are removed, so the bitmap never hides
    /// a watched interface.
    fn write_bits(&mut self) {
        let mut want = [0u64; WATCH_BITMAP_WORDS as usize];
        for (key, (_, via)) in &self.active {
            if let Via::Tracepoint = via {
                let (word, bit) = watch_bit(key.ifindex);
                want[word as usize] |= 1 << bit;
            }
        }
        for (i, (have, want)) in self.bits.iter_mut().zip(want).enumerate() {
            if *have == want {
                continue;
            }
            match self.hooks.ifindex_bits.set(i as u32, want, 0) {
                Ok(()) => *have = want,
                Err(e) => log::warn!("cannot update the watched-ifindex bitmap: {e}"),
            }
        }
    }

    /// A notification (route, rule, nexthop, link or address) from
    /// namespace `netns` at `now_ns`: arms the tc programs on demand if it
    /// holds a watched interface.
    pub fn changed(&mut self, netns: u32, now_ns: u64) {
        if self.active.keys().any(|k| k.netns == netns) {
            self.armer.changed(now_ns);
        }
    }

    /// Attaches or detaches the tc programs as the arming wants at
    /// `now_ns` (every tick). A failure is logged and retried at the next
    /// tick.
    pub fn arm_tick(&mut self, now_ns: u64) {
        // A time-exceeded message sent: a packet may be looping through
        // the router (armed as after a loop candidate).
        for (ns, slot) in self.expiries.iter_mut() {
            let Some(e) = slot else { continue };
            match e.grew(now_ns) {
                Ok(false) => {}
                Ok(true) => {
                    log::debug!("namespace {ns} sent ICMP time exceeded: arming the tc programs");
                    self.armer.loop_seen(now_ns);
                }
                Err(err) => {
                    log::warn!("namespace {ns}: {err:#}; no longer read");
                    *slot = None;
                }
            }
        }
        let want = self.armer.want(now_ns);
        for (key, (spec, via)) in self.active.iter_mut() {
            // The tracepoints stay attached.
            if !via.is_tc() || via.is_armed() == want {
                continue;
            }
            let started = std::time::Instant::now();
            match self.hooks.arm(spec, *key, via, want) {
                Ok(()) => log::debug!(
                    "{spec}: tc programs {} in {:?}",
                    if want { "armed" } else { "disarmed" },
                    started.elapsed()
                ),
                Err(e) => log::warn!(
                    "{spec}: cannot {} the tc programs: {e:#}",
                    if want { "attach" } else { "detach" }
                ),
            }
        }
    }

    /// How `spec`'s programs are attached: `"on_demand"` for tc programs
    /// (tcx or classic) in that mode, `"always"` for the tracepoints;
    /// `None` while its interface is absent.
    pub fn programs(&self, spec: &IfaceSpec) -> Option<&'static str> {
        self.active
            .values()
            .find(|(s, _)| s == spec)
            .map(|(_, v)| match v {
                Via::Tc(_) | Via::Clsact(_) => self.armer.mode().name(),
                _ => Arming::Always.name(),
            })
    }

    /// A loop candidate's packet arrived (monotonic ns): FIB lookup
    /// tracing is switched on, so the loop's next packets come with the
    /// lookups that routed them, and stays on [`FIB_LINGER_NS`] after the
    /// last candidate. The tc programs stay armed while candidates come.
    pub fn loop_candidate(&mut self, ts_ns: u64) {
        self.armer.loop_seen(ts_ns);
        if self.fib_until.is_none() {
            self.set_fib(true);
        }
        self.fib_until = Some(ts_ns.saturating_add(FIB_LINGER_NS));
    }

    /// Switches FIB lookup tracing off once no candidate came for
    /// [`FIB_LINGER_NS`].
    pub fn expire_fib(&mut self, now_ns: u64) {
        if self.fib_until.is_some_and(|t| now_ns > t) {
            self.set_fib(false);
            self.fib_until = None;
        }
    }

    /// Attaches or detaches the FIB lookup programs (see
    /// [`PacketHooks::set_fib`]); a failure is logged, and loops are still
    /// explained from the routing state.
    fn set_fib(&mut self, on: bool) {
        match self.hooks.set_fib(on) {
            Ok(()) => {
                self.fib_on = on;
                log::debug!("FIB lookup tracing {}", if on { "on" } else { "off" })
            }
            Err(e) => log::warn!(
                "cannot switch FIB lookup tracing {}: {e:#}",
                if on { "on" } else { "off" }
            ),
        }
    }

    /// Whether the FIB lookup programs are attached now (a loop's lookups
    /// can arrive).
    pub fn fib_on(&self) -> bool {
        self.fib_on
    }

    /// How `spec` is watched now: `None` while its interface is absent.
    pub fn via(&self, spec: &IfaceSpec) -> Option<&'static str> {
        self.active
            .values()
            .find(|(s, _)| s == spec)
            .map(|(_, v)| v.name())
    }

    /// The hook that watches `spec` now ([`Via::hook`]): `None` while its
    /// interface is absent.
    pub fn hook(&self, spec: &IfaceSpec) -> Option<&'static str> {
        self.active
            .values()
            .find(|(s, _)| s == spec)
            .map(|(_, v)| v.hook())
    }

    /// Whether `spec` is installed (its interface exists now).
    pub fn is_active(&self, spec: &IfaceSpec) -> bool {
        self.active.values().any(|(s, _)| s == spec)
    }

    /// The interface name of an installed key.
    /// The mechanism that sees the packets of an installed interface.
    pub fn source(&self, key: &WatchKey) -> Option<Source> {
        self.active.get(key).map(|(_, via)| match via {
            Via::Tracepoint => Source::Tracepoint,
            Via::Tc(..) | Via::Clsact(_) => Source::Tc,
        })
    }

    pub fn name(&self, key: &WatchKey) -> Option<&str> {
        self.active.get(key).map(|(s, _)| s.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bitmap the programs check first folds large ifindexes onto
    /// small ones (a superset), and never loses one.
    #[test]
    fn ifindex_bits() {
        assert_eq!(watch_bit(1), (0, 1));
        assert_eq!(watch_bit(63), (0, 63));
        assert_eq!(watch_bit(64), (1, 0));
        assert_eq!(watch_bit(64 * WATCH_BITMAP_WORDS + 3), watch_bit(3));
        assert_eq!(watch_bit(u32::MAX).0, WATCH_BITMAP_WORDS - 1);
    }

    #[test]
    fn parses_specs() {
        assert_eq!(
            "lab:tailscale0".parse::<IfaceSpec>().unwrap(),
            IfaceSpec {
                netns: Some("lab".into()),
                name: "tailscale0".into()
            }
        );
        assert_eq!("eth0".parse::<IfaceSpec>().unwrap().netns, None);
        for bad in ["", ":eth0", "ns:", "a-very-long-interface-name", "ns:a b"] {
            assert!(bad.parse::<IfaceSpec>().is_err(), "{bad} accepted");
        }
    }
}
