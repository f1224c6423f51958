//! Metrics of the present state, for alerts that name the cause: loops
//! going on, guard expectations broken, routes removed and not put back,
//! each table's last removal, and what the tracer runs on.
//!
//! Series of a loop or of a broken expectation exist while it lasts (its
//! end removes them, so an alert on them resolves), and carry in labels
//! what an alert's annotation needs: the suspect change and who made it.
//! Cardinality is bounded: at most [`LOOPS_MAX`] loop series (beyond, one
//! `dst="other"` series counts the rest), one last-removal series per
//! namespace and table, and at most [`MISSING_MAX`] removed routes
//! remembered per table.
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    describe,
    event::{Body, Change, Event, Kind, LoopReport, Netns, Ready, Route, RouteId},
};

/// Most loop series at once (per destination); the rest share one.
pub const LOOPS_MAX: usize = 256;
/// Most removed routes remembered per namespace and table: beyond, more
/// removals are not counted in `tracer_routes_missing` (it then says at
/// least this many).
pub const MISSING_MAX: usize = 100_000;
/// Gone namespaces remembered, so that their late events make no series.
const GONE_MAX: usize = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoopLabels {
    netns: String,
    iface: String,
    dst: String,
    /// The suspect change in words ("throw 192.168.1.0/24 removed from
    /// table 52"), or empty.
    suspect: String,
    /// Who made it ("systemd-networkd.service (pid 812)"), or empty.
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BrokenLabels {
    netns: String,
    expectation: String,
    /// The change that broke it, or empty.
    change: String,
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    netns: String,
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RemovalLabels {
    netns: String,
    table: String,
    route: String,
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KernelLabels {
    release: String,
    arch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttachLabels {
    hook: String,
    mechanism: String,
}

type TimeGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

pub(super) struct Present {
    loop_active: Family<LoopLabels, Gauge>,
    /// The labels of each loop going on, by (netns, iface, dst).
    loops: HashMap<(String, String, String), LoopLabels>,
    /// Loops beyond `LOOPS_MAX`, by (netns, iface, dst).
    loops_other: HashSet<(String, String, String)>,
    broken: Family<BrokenLabels, Gauge>,
    broken_now: HashMap<(String, String), BrokenLabels>,
    missing: Family<TableLabels, Gauge>,
    /// Identities of the routes removed and not put back, per
    /// (netns, table).
    missing_ids: HashMap<(String, u32), HashSet<u64>>,
    last_removal: Family<RemovalLabels, TimeGauge>,
    last_removal_of: HashMap<(String, u32), RemovalLabels>,
    kernel: Family<KernelLabels, Gauge>,
    attach: Family<AttachLabels, Gauge>,
    /// Labels of namespaces gone (at most [`GONE_MAX`]; one that comes
    /// again under the same name leaves the set).
    gone: HashSet<String>,
}

/// "systemd-networkd.service (pid 812)", "ip (pid 4242)", or empty.
fn by(c: &Change) -> String {
    match c.process.as_deref() {
        Some(p) => format!("{} (pid {})", p.unit.as_deref().unwrap_or(&p.comm), p.pid),
        None => String::new(),
    }
}

/// The change in words an alert can quote: "throw 192.168.1.0/24 removed
/// from table 52", "rule 5270 lookup 52 added".
fn change_words(e: &Event, c: &Change) -> String {
    let verb = match e.kind {
        Kind::RouteDel | Kind::RuleDel => "removed",
        Kind::RouteReplace => "replaced",
        _ => "added",
    };
    match (&c.route, &c.rule) {
        (Some(r), _) => {
            let what = describe::route_short(r);
            let prep = if verb == "removed" { "from" } else { "in" };
            match r.table {
                Some(t) => format!("{what} {verb} {prep} table {t}"),
                None => format!("{what} {verb}"),
            }
        }
        (_, Some(r)) => format!("rule {} {verb}", describe::rule(r)),
        _ => format!("{} {verb}", e.kind.as_str()),
    }
}

fn ns(n: &Netns) -> String {
    describe::netns_label(n)
}

/// What identifies a route for "removed and not put back": as `report`
/// matches them ([`RouteId`]), hashed to keep the set small.
fn identity(r: &Route) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    RouteId::of(r).hash(&mut h);
    h.finish()
}

impl Present {
    pub(super) fn new(r: &mut Registry) -> Present {
        let p = Present {
            loop_active: Family::default(),
            loops: HashMap::new(),
            loops_other: HashSet::new(),
            broken: Family::default(),
            broken_now: HashMap::new(),
            missing: Family::default(),
            missing_ids: HashMap::new(),
            last_removal: Family::default(),
            last_removal_of: HashMap::new(),
            kernel: Family::default(),
            attach: Family::default(),
            gone: HashSet::new(),
        };
        r.register(
            "loop_active",
            "1 while a forwarding loop lasts, by namespace, interface and destination, with the suspect change and who made it",
            p.loop_active.clone(),
        );
        r.register(
            "guard_expectation_broken",
            "1 while a guard expectation is broken past its grace period, with the change that broke it and who made it",
            p.broken.clone(),
        );
        r.register(
            "routes_missing",
            "Routes removed and not put back since the tracer started, by namespace and table",
            p.missing.clone(),
        );
        r.register(
            "last_route_removal_timestamp_seconds",
            "When the last route of each namespace and table was removed, which route and by whom",
            p.last_removal.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        r.register("build_info", "The tracer's version (always 1)", build);
        r.register(
            "kernel_info",
            "The kernel the tracer runs on (always 1)",
            p.kernel.clone(),
        );
        r.register(
            "attach_info",
            "How each hook is attached: tracepoint, kprobe, fentry; tcx, clsact or tracepoint for a watched interface (always 1)",
            p.attach.clone(),
        );
        p
    }

    pub(super) fn event(&mut self, e: &Event) {
        // A gone namespace's late events (read after its `netns_gone`) make
        // no series again: nothing would remove them.
        let netns = match &e.body {
            Body::Loop(l) => Some(&l.netns),
            Body::Guard(g) => Some(&g.netns),
            Body::Change(c) => Some(&c.netns),
            Body::Namespace(n) => {
                let label = ns(&n.netns);
                if e.kind == Kind::NetnsGone {
                    if self.gone.len() >= GONE_MAX {
                        self.gone.clear();
                    }
                    self.gone.insert(label);
                } else {
                    self.gone.remove(&label);
                }
                None
            }
            _ => None,
        };
        // (Labelled only when some namespace is gone: a label is built per
        // change, and `change` builds its own.)
        if !self.gone.is_empty() && netns.is_some_and(|n| self.gone.contains(&ns(n))) {
            return;
        }
        match &e.body {
            Body::Ready(r) => self.ready(r),
            Body::Loop(l) => self.looping(e.kind, l),
            Body::Guard(g) => {
                let key = (ns(&g.netns), g.expectation.clone());
                if let Some(old) = self.broken_now.remove(&key) {
                    self.broken.remove(&old);
                }
                if e.kind == Kind::GuardViolation {
                    let cause = g.change.as_deref().and_then(|ev| Some((ev, ev.change()?)));
                    let labels = BrokenLabels {
                        netns: key.0.clone(),
                        expectation: key.1.clone(),
                        change: cause.map(|(ev, c)| change_words(ev, c)).unwrap_or_default(),
                        by: cause.map(|(_, c)| by(c)).unwrap_or_default(),
                    };
                    self.broken.get_or_create(&labels).set(1);
                    self.broken_now.insert(key, labels);
                }
            }
            Body::Change(c) => self.change(e, c),
            Body::Namespace(n) if e.kind == Kind::NetnsGone => self.forget(&ns(&n.netns)),
            _ => {}
        }
    }

    fn ready(&mut self, r: &Ready) {
        self.kernel
            .get_or_create(&KernelLabels {
                release: r.kernel.clone(),
                arch: std::env::consts::ARCH.into(),
            })
            .set(1);
        for (hook, source) in &r.hooks {
            self.attach
                .get_or_create(&AttachLabels {
                    hook: hook.clone(),
                    mechanism: source.as_str().into(),
                })
                .set(1);
        }
        for i in &r.ifaces {
            self.attach
                .get_or_create(&AttachLabels {
                    hook: format!("packets:{}", i.iface),
                    mechanism: i.hook.unwrap_or(i.via.unwrap_or("absent")).into(),
                })
                .set(1);
        }
    }

    fn looping(&mut self, kind: Kind, l: &LoopReport) {
        let key = (ns(&l.netns), l.iface.clone(), l.original.dst.clone());
        let other = LoopLabels {
            netns: key.0.clone(),
            iface: key.1.clone(),
            dst: "other".into(),
            suspect: String::new(),
            by: String::new(),
        };
        if kind == Kind::LoopEnd {
            if let Some(labels) = self.loops.remove(&key) {
                self.loop_active.remove(&labels);
            } else if self.loops_other.remove(&key) {
                let g = self.loop_active.get_or_create(&other);
                if g.dec() <= 1 {
                    drop(g);
                    self.loop_active.remove(&other);
                }
            }
            return;
        }
        if self.loops.contains_key(&key) || self.loops_other.contains(&key) {
            return;
        }
        if self.loops.len() >= LOOPS_MAX {
            self.loops_other.insert(key);
            self.loop_active.get_or_create(&other).inc();
            return;
        }
        let cause = l.suspect.as_deref().and_then(|ev| Some((ev, ev.change()?)));
        let labels = LoopLabels {
            netns: key.0.clone(),
            iface: key.1.clone(),
            dst: key.2.clone(),
            suspect: cause.map(|(ev, c)| change_words(ev, c)).unwrap_or_default(),
            by: cause.map(|(_, c)| by(c)).unwrap_or_default(),
        };
        self.loop_active.get_or_create(&labels).set(1);
        self.loops.insert(key, labels);
    }

    fn change(&mut self, e: &Event, c: &Change) {
        // As `report` counts what is missing: changes that took effect; a
        // removal with its interface is gone, not missing; a replacement
        // puts a route in the place of the old one.
        let Some(r) = c.route.as_ref().filter(|_| c.applied()) else {
            return;
        };
        let Some(table) = r.table else { return };
        let key = (ns(&c.netns), table);
        let labels = TableLabels {
            netns: key.0.clone(),
            table: table.to_string(),
        };
        let ids = self.missing_ids.entry(key.clone()).or_default();
        match e.kind {
            Kind::RouteDel => {
                if c.gone_with_interface() {
                    ids.remove(&identity(r));
                } else if ids.len() < MISSING_MAX {
                    ids.insert(identity(r));
                }
                let removal = RemovalLabels {
                    netns: key.0.clone(),
                    table: labels.table.clone(),
                    route: describe::route_short(r),
                    by: by(c),
                };
                if let Some(old) = self.last_removal_of.insert(key, removal.clone()) {
                    self.last_removal.remove(&old);
                }
                let at = chrono::DateTime::parse_from_rfc3339(&e.ts)
                    .map(|t| t.timestamp_micros() as f64 / 1e6)
                    .unwrap_or(0.0);
                self.last_removal.get_or_create(&removal).set(at);
            }
            Kind::RouteAdd | Kind::RouteReplace => {
                ids.remove(&identity(r));
            }
            _ => return,
        }
        let n = ids.len() as i64;
        self.missing.get_or_create(&labels).set(n);
    }

    /// A namespace went away: its series go with it.
    fn forget(&mut self, netns: &str) {
        self.loops.retain(|k, l| {
            let keep = k.0 != netns;
            if !keep {
                self.loop_active.remove(l);
            }
            keep
        });
        self.broken_now.retain(|k, l| {
            let keep = k.0 != netns;
            if !keep {
                self.broken.remove(l);
            }
            keep
        });
        self.missing_ids.retain(|k, _| {
            let keep = k.0 != netns;
            if !keep {
                self.missing.remove(&TableLabels {
                    netns: k.0.clone(),
                    table: k.1.to_string(),
                });
            }
            keep
        });
        self.last_removal_of.retain(|k, l| {
            let keep = k.0 != netns;
            if !keep {
                self.last_removal.remove(l);
            }
            keep
        });
    }
}

#[cfg(test)]
#[path = "present_tests.rs"]
mod tests;
