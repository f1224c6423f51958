//! The shipped alerting rules (dist/prometheus/tracer.rules.yml) and the
//! Grafana dashboard (dist/grafana/tracer.json) name only metrics the
//! tracer exports: each `tracer_*` name in them is a sample name of the
//! registry once every kind of event has been through it. (promtool checks
//! and unit-tests the rules: tests/prometheus.rs; tests/fleet.rs runs the
//! dashboard's queries on a real Prometheus.)
use std::collections::BTreeSet;

use prometheus_client::encoding::text::encode;

use super::Metrics;
use crate::{
    event::{Body, GuardReport, Kind, Lost, Source},
    journal::write::Stats,
    schema_emitted_tests::{change, event, loop_body, netns, repair_samples, route},
};

const RULES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../dist/prometheus/tracer.rules.yml"
));
const DASHBOARD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../dist/grafana/tracer.json"
));

/// The `tracer_*` names a text mentions.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("tracer_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

/// The sample names the registry exposes once every kind of event has
/// been through it.
fn exported() -> (BTreeSet<String>, String) {
    let m = Metrics::new(true);
    m.event(&event(
        Kind::RouteDel,
        Source::Tracepoint,
        change(None, Some(route())),
    ));
    m.event(&event(Kind::Loop, Source::Tracepoint, loop_body(true)));
    m.event(&event(
        Kind::GuardViolation,
        Source::Tracer,
        Body::Guard(GuardReport {
            expectation: "10.20.0.0/16 table main".into(),
            netns: netns(),
            since: "2026-11-24T19:10:39.258986Z".into(),
            grace_secs: 5.0,
            change: None,
        }),
    ));
    for e in repair_samples() {
        m.event(&e);
    }
    m.event(&event(
        Kind::Lost,
        Source::Tracepoint,
        Body::Lost(Lost {
            count: 1,
            location: "ring_buffer".into(),
        }),
    ));
    m.journal(Stats {
        failing: true,
        ..Stats::default()
    });
    let mut exposed = String::new();
    encode(&mut exposed, &m.registry()).unwrap();
    // Sample lines: the name, then `{` or a space.
    let samples: BTreeSet<String> = exposed
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect();
    (samples, exposed)
}

#[test]
fn the_rules_name_only_exported_metrics() {
    let (samples, exposed) = exported();
    let used = names(RULES);
    assert!(used.len() >= 7, "{used:?}");
    let missing: Vec<&String> = used.difference(&samples).collect();
    assert!(
        missing.is_empty(),
        "the rules use {missing:?}, not exported:\n{exposed}"
    );
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let (samples, exposed) = exported();
    let d: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let panels = d["panels"].as_array().expect("panels");
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= panels.len(), "a query per panel: {exprs:?}");
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| names(e)).collect();
    for want in [
        "tracer_loop_active",
        "tracer_routes_missing",
        "tracer_changes_total",
    ] {
        assert!(used.contains(want), "the dashboard shows {want}");
    }
    let missing: Vec<&String> = used.difference(&samples).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses {missing:?}, not exported:\n{exposed}"
    );
}
