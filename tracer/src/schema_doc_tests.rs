//! Keeps docs/events.md's own text right: every enum value the tracer can
//! emit is listed in its field's meaning, and every JSON example line
//! follows the field tables.
use std::collections::BTreeSet;

use serde_json::Value;

use crate::{
    event::{Cause, Family, Kind, Source},
    test_schema::{Checker, DOC, DOC_PATH, dedup, fail_on, parse_doc},
};

fn serde_name<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .unwrap()
        .as_str()
        .expect("unit variant serializes to a string")
        .to_string()
}

// The exhaustive matches make adding a variant a compile error here until it
// is listed (and so checked against the document).
fn all_kinds() -> Vec<Kind> {
    let all = vec![
        Kind::RuleAdd,
        Kind::RuleDel,
        Kind::RouteAdd,
        Kind::RouteDel,
        Kind::RouteReplace,
        Kind::NexthopAdd,
        Kind::NexthopDel,
        Kind::NexthopReplace,
        Kind::Lost,
        Kind::Ready,
        Kind::Loop,
        Kind::LoopSummary,
        Kind::LoopEnd,
        Kind::Snapshot,
        Kind::SnapshotEnd,
        Kind::JournalError,
        Kind::JournalResumed,
        Kind::GuardViolation,
        Kind::GuardRestored,
        Kind::GuardAction,
        Kind::GuardRepair,
        Kind::GuardRepairWaiting,
        Kind::GuardRepairGaveUp,
        Kind::GuardReloaded,
        Kind::NetnsNew,
        Kind::NetnsGone,
    ];
    all.iter().for_each(|k| match k {
        Kind::RuleAdd
        | Kind::RuleDel
        | Kind::RouteAdd
        | Kind::RouteDel
        | Kind::RouteReplace
        | Kind::NexthopAdd
        | Kind::NexthopDel
        | Kind::NexthopReplace
        | Kind::Lost
        | Kind::Ready
        | Kind::Loop
        | Kind::LoopSummary
        | Kind::LoopEnd
        | Kind::Snapshot
        | Kind::SnapshotEnd
        | Kind::JournalError
        | Kind::JournalResumed
        | Kind::GuardViolation
        | Kind::GuardRestored
        | Kind::GuardAction
        | Kind::GuardRepair
        | Kind::GuardRepairWaiting
        | Kind::GuardRepairGaveUp
        | Kind::GuardReloaded
        | Kind::NetnsNew
        | Kind::NetnsGone => {}
    });
    all
}

fn all_sources() -> Vec<Source> {
    let all = vec![
        Source::Fentry,
        Source::Kprobe,
        Source::Tracepoint,
        Source::Netlink,
        Source::Tc,
        Source::Tracer,
    ];
    all.iter().for_each(|s| match s {
        Source::Fentry
        | Source::Kprobe
        | Source::Tracepoint
        | Source::Netlink
        | Source::Tc
        | Source::Tracer => {}
    });
    all
}

fn all_causes() -> Vec<Cause> {
    let all = vec![
        Cause::LinkDown,
        Cause::LinkDel,
        Cause::AddrDel,
        Cause::NexthopDel,
        Cause::NexthopReplace,
        Cause::NetnsExit,
        Cause::LinkUp,
        Cause::AddrAdd,
        Cause::Unknown,
    ];
    all.iter().for_each(|c| match c {
        Cause::LinkDown
        | Cause::LinkDel
        | Cause::AddrDel
        | Cause::NexthopDel
        | Cause::NexthopReplace
        | Cause::NetnsExit
        | Cause::LinkUp
        | Cause::AddrAdd
        | Cause::Unknown => {}
    });
    all
}

fn all_families() -> Vec<Family> {
    let all = vec![Family::Inet, Family::Inet6];
    all.iter().for_each(|f| match f {
        Family::Inet | Family::Inet6 => {}
    });
    all
}

#[test]
fn documented_enum_values_match_serde_names() {
    let schema = parse_doc(DOC);
    let mut errors = Vec::new();
    let mut expect = |object: &str, field: &str, names: Vec<String>| {
        let Some(f) = schema[object].get(field) else {
            return errors.push(format!(
                "{object}.{field} is emitted but not documented in {DOC_PATH}"
            ));
        };
        for name in names {
            if !f.meaning.contains(&format!("`{name}`")) {
                errors.push(format!("{object}.{field} can be `{name}` but its meaning in {DOC_PATH} does not list it"));
            }
        }
    };
    expect(
        "event",
        "kind",
        all_kinds().into_iter().map(serde_name).collect(),
    );
    expect(
        "event",
        "source",
        all_sources().into_iter().map(serde_name).collect(),
    );
    expect(
        "change",
        "cause",
        all_causes().into_iter().map(serde_name).collect(),
    );
    expect(
        "rule",
        "family",
        all_families().into_iter().map(serde_name).collect(),
    );
    expect(
        "route",
        "family",
        all_families().into_iter().map(serde_name).collect(),
    );
    fail_on(errors);
}

#[test]
fn document_examples_follow_the_tables() {
    let schema = parse_doc(DOC);
    let mut checker = Checker::new(&schema);
    let mut in_json = false;
    let mut kinds = BTreeSet::new();
    for (n, line) in DOC.lines().enumerate() {
        match line.trim() {
            "```json" => in_json = true,
            "```" => in_json = false,
            l if in_json && !l.is_empty() => {
                checker.origin = format!("example at {DOC_PATH}:{}", n + 1);
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: not JSON: {e}", checker.origin));
                kinds.insert(
                    v.get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                );
                checker.event(&v, None);
            }
            _ => {}
        }
    }
    for kind in ["ready", "lost", "rule_del", "route_del"] {
        if !kinds.contains(kind) {
            checker
                .errors
                .push(format!("{DOC_PATH} has no example line for {kind}"));
        }
    }
    fail_on(dedup(checker.errors));
}
