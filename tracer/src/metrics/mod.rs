//! `--metrics ADDR`: Prometheus metrics of a session, encoded by the
//! prometheus-client crate and served over HTTP (see `serve`).
//!
//! Names follow Prometheus conventions: a `tracer_` prefix, `_total` on
//! counters, base units (`_bytes`), labels for dimensions of one quantity.
mod present;
pub mod serve;

use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    event::{Body, Event, Kind},
    journal::write::Stats,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    /// rule_add, rule_del, route_add, route_del.
    kind: String,
    table: String,
    unit: String,
    comm: String,
    /// "ok", the kernel's error name, or "unknown".
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IfaceLabels {
    iface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LocationLabels {
    location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExpectationLabels {
    expectation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepairLabels {
    expectation: String,
    /// "ok", the kernel's error name, "dry_run" or "gave_up".
    result: String,
}

#[derive(Default)]
struct Journal {
    lines: Counter,
    bytes: Counter,
    dropped: Counter,
    errors: Counter,
    rotations: Counter,
    removed: Counter,
    pending: Gauge,
    failing: Gauge,
    /// Totals already added to the counters.
    last: Stats,
}

/// The session's metrics; cheap to update from the event path.
pub struct Metrics {
    registry: Arc<Registry>,
    changes: Family<ChangeLabels, Counter>,
    loops: Family<IfaceLabels, Counter>,
    violations: Family<ExpectationLabels, Counter>,
    repairs: Family<RepairLabels, Counter>,
    lost: Family<LocationLabels, Counter>,
    journal: Mutex<Journal>,
    present: Mutex<present::Present>,
}

impl Metrics {
    /// With `journal`, the journal's metrics are registered too.
    pub fn new(journal: bool) -> Metrics {
        let mut r = Registry::with_prefix("tracer");
        let changes = Family::<ChangeLabels, Counter>::default();
        r.register(
            "changes",
            "Rule and route additions and removals, by kind, table, systemd unit, command and result",
            changes.clone(),
        );
        let loops = Family::<IfaceLabels, Counter>::default();
        r.register(
            "loops_detected",
            "Forwarding loops detected (one per looping flow)",
            loops.clone(),
        );
        let violations = Family::<ExpectationLabels, Counter>::default();
        r.register(
            "guard_violations",
            "Guard expectations broken past their grace period",
            violations.clone(),
        );
        let repairs = Family::<RepairLabels, Counter>::default();
        r.register(
            "guard_repairs",
            "Repairs of guard --repair, by expectation and result (ok, the kernel's error name, dry_run, gave_up)",
            repairs.clone(),
        );
        let lost = Family::<LocationLabels, Counter>::default();
        r.register(
            "events_lost",
            "Records lost before the tracer read them, by where (ring_buffer, netlink_socket)",
            lost.clone(),
        );
        let j = Journal::default();
        if journal {
            register_journal(&mut r, &j);
        }
        let present = present::Present::new(&mut r);
        Metrics {
            registry: Arc::new(r),
            changes,
            loops,
            violations,
            repairs,
            lost,
            journal: Mutex::new(j),
            present: Mutex::new(present),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    pub fn event(&self, e: &Event) {
        self.present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .event(e);
        match &e.body {
            Body::Change(c) => {
                let table = c
                    .route
                    .as_ref()
                    .and_then(|r| r.table)
                    .or_else(|| c.rule.as_ref().and_then(|r| r.table));
                let p = c.process.as_deref();
                self.changes
                    .get_or_create(&ChangeLabels {
                        kind: e.kind.as_str().to_string(),
                        table: table.map(|t| t.to_string()).unwrap_or_default(),
                        unit: p.and_then(|p| p.unit.clone()).unwrap_or_default(),
                        comm: p.map(|p| p.comm.clone()).unwrap_or_default(),
                        result: c.result.as_deref().unwrap_or("unknown").to_string(),
                    })
                    .inc();
            }
            Body::Loop(l) if e.kind == Kind::Loop => {
                self.loops
                    .get_or_create(&IfaceLabels {
                        iface: l.iface.clone(),
                    })
                    .inc();
            }
            Body::Guard(g) if e.kind == Kind::GuardViolation => {
                self.violations
                    .get_or_create(&ExpectationLabels {
                        expectation: g.expectation.clone(),
                    })
                    .inc();
            }
            Body::GuardRepair(r) if e.kind != Kind::GuardRepairWaiting => {
                let result = match (e.kind, r.dry_run, r.result.as_deref()) {
                    (Kind::GuardRepairGaveUp, ..) => "gave_up",
                    (_, true, _) => "dry_run",
                    (_, _, Some(res)) => res,
                    (_, _, None) => "unknown",
                };
                self.repairs
                    .get_or_create(&RepairLabels {
                        expectation: r.expectation.clone(),
                        result: result.to_string(),
                    })
                    .inc();
            }
            Body::Lost(l) => {
                self.lost
                    .get_or_create(&LocationLabels {
                        location: l.location.clone(),
                    })
                    .inc_by(l.count);
            }
            _ => {}
        }
    }

    /// Bring the journal metrics up to the journal's own counts.
    pub fn journal(&self, s: Stats) {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let last = j.last;
        j.lines.inc_by(s.lines_written - last.lines_written);
        j.bytes.inc_by(s.bytes_written - last.bytes_written);
        j.dropped.inc_by(s.lines_dropped - last.lines_dropped);
        j.errors.inc_by(s.write_errors - last.write_errors);
        j.rotations.inc_by(s.rotations - last.rotations);
        j.removed.inc_by(s.files_removed - last.files_removed);
        j.pending.set(s.pending_bytes as i64);
        j.failing.set(s.failing as i64);
        j.last = s;
    }
}

fn register_journal(r: &mut Registry, j: &Journal) {
    r.register(
        "journal_lines_written",
        "Lines written to the journal",
        j.lines.clone(),
    );
    r.register(
        "journal_written_bytes",
        "Bytes written to the journal",
        j.bytes.clone(),
    );
    r.register(
        "journal_lines_dropped",
        "Events the journal could not hold while writing failed",
        j.dropped.clone(),
    );
    r.register(
        "journal_write_errors",
        "Failed journal writes (each retried)",
        j.errors.clone(),
    );
    r.register(
        "journal_rotations",
        "Journal files started by rotation",
        j.rotations.clone(),
    );
    r.register(
        "journal_files_removed",
        "Journal files removed by the size and age limits",
        j.removed.clone(),
    );
    r.register(
        "journal_pending_bytes",
        "Bytes of events waiting to be written to the journal",
        j.pending.clone(),
    );
    r.register(
        "journal_failing",
        "1 while journal writes fail (e.g. disk full), else 0",
        j.failing.clone(),
    );
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;
    use crate::event::{Change, Lost, Netns, Process, Route, Source};

    fn text(m: &Metrics) -> String {
        let mut s = String::new();
        encode(&mut s, &m.registry()).unwrap();
        s
    }

    #[test]
    fn changes_lost_and_journal_are_counted() {
        let m = Metrics::new(true);
        let del = Event {
            ts: String::new(),
            kind: Kind::RouteDel,
            source: Source::Tracepoint,
            body: Body::Change(Box::new(Change {
                process: Some(std::sync::Arc::new(Process {
                    comm: "systemd-network".into(),
                    unit: Some("systemd-networkd.service".into()),
                    ..Process::default()
                })),
                netns: Netns::default(),
                rule: None,
                route: Some(Route {
                    table: Some(52),
                    ..Route::default()
                }),
                result: Some("ok".into()),
                cause: None,
                old: None,
                nexthop: None,
                old_nexthop: None,
                cause_nhid: None,
                nl_seq: None,
                note: None,
            })),
        };
        m.event(&del);
        m.event(&del);
        m.event(&Event {
            ts: String::new(),
            kind: Kind::Lost,
            source: Source::Tracepoint,
            body: Body::Lost(Lost {
                count: 37,
                location: "ring_buffer".into(),
            }),
        });
        m.journal(Stats {
            lines_written: 10,
            bytes_written: 1000,
            ..Stats::default()
        });
        m.journal(Stats {
            lines_written: 15,
            bytes_written: 1500,
            failing: true,
            ..Stats::default()
        });
        let t = text(&m);
        assert!(
            t.contains(r#"tracer_changes_total{kind="route_del",table="52",unit="systemd-networkd.service",comm="systemd-network",result="ok"} 2"#),
            "{t}"
        );
        assert!(
            t.contains(r#"tracer_events_lost_total{location="ring_buffer"} 37"#),
            "{t}"
        );
        assert!(t.contains("tracer_journal_lines_written_total 15"), "{t}");
        assert!(t.contains("tracer_journal_written_bytes_total 1500"), "{t}");
        assert!(t.contains("tracer_journal_failing 1"), "{t}");
        // A family appears once it has a first label set.
        assert!(!t.contains("tracer_loops_detected_total{"), "{t}");
        assert!(t.ends_with("# EOF\n"), "{t}");
    }
}

#[cfg(test)]
mod rules_tests;
