//! Keeps docs/report.md in step with `tracer report --json`: every object
//! of a report covering every kind of item is checked against the
//! document's table for it (keys both ways, JSON types and nullability),
//! every table must be used, and the document's example must follow the
//! tables too. Objects described in docs/events.md (rule, route, netns,
//! packet, lookup) are left to the schema tests (`schema_emitted_tests`,
//! `schema_doc_tests`).
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{
    lab_tests::fixture_line,
    nexthop_tests::nexthop_lines,
    synthetic_tests::{change, proc, route, rule, synthetic},
};
use crate::{
    journal::read::{Location, Problem},
    report::select::Select,
};

const DOC: &str = include_str!("../../../docs/report.md");

#[derive(Debug)]
struct Field {
    types: Vec<String>,
    may_be_absent: bool,
}

type Schema = BTreeMap<String, BTreeMap<String, Field>>;

fn parse_doc() -> Schema {
    let mut schema = Schema::new();
    let mut current = None;
    let mut in_code = false;
    for line in DOC.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        if let Some(name) = line.strip_prefix("### ") {
            current = Some(name.trim().to_string());
            schema.entry(name.trim().to_string()).or_default();
            continue;
        }
        if line.starts_with("## ") {
            current = None;
        }
        let Some(obj) = &current else { continue };
        let cells: Vec<String> = line
            .replace("\\|", "\u{0}")
            .split('|')
            .map(|c| c.trim().replace('\u{0}', "|"))
            .collect();
        if cells.len() != 5 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        let types = cells[2].split('|').map(String::from).collect();
        let may_be_absent = cells[3].contains("(absent when");
        let prev = schema.get_mut(obj).unwrap().insert(
            name.clone(),
            Field {
                types,
                may_be_absent,
            },
        );
        assert!(prev.is_none(), "docs/report.md: {obj}.{name} twice");
    }
    schema
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `v` as the document's `obj`, then the objects inside it that
/// this document describes; records which tables were used.
fn check(schema: &Schema, obj: &str, v: &Value, path: &str, used: &mut BTreeSet<String>) {
    used.insert(obj.to_string());
    let fields = schema
        .get(obj)
        .unwrap_or_else(|| panic!("docs/report.md has no table for `{obj}` ({path})"));
    let map = v
        .as_object()
        .unwrap_or_else(|| panic!("{path} is not an object"));
    for (k, val) in map {
        let f = fields
            .get(k)
            .unwrap_or_else(|| panic!("{path}.{k} is not in docs/report.md's `{obj}` table"));
        let t = json_type(val);
        assert!(
            f.types.iter().any(|d| d == t),
            "{path}.{k} is {t}, docs/report.md says {:?}",
            f.types
        );
    }
    for (k, f) in fields {
        assert!(
            map.contains_key(k) || f.may_be_absent,
            "{path} lacks `{k}`, which docs/report.md does not mark as possibly absent"
        );
    }
    let mut sub = |key: &str, obj: &str| match map.get(key) {
        Some(Value::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                check(schema, obj, it, &format!("{path}.{key}[{i}]"), used);
            }
        }
        Some(v @ Value::Object(_)) => check(schema, obj, v, &format!("{path}.{key}"), used),
        _ => {}
    };
    match obj {
        "report" => {
            sub("missing", "missing");
            sub("problems", "problem");
            for (i, item) in map["timeline"].as_array().unwrap().iter().enumerate() {
                let t = item["type"].as_str().unwrap();
                check(schema, t, item, &format!("{path}.timeline[{i}]"), used);
            }
        }
        "episode" => {
            sub("actor", "actor");
            sub("removed", "removed");
            sub("added", "added");
            sub("failed", "failed");
        }
        "removed" | "suspect" => {
            sub("fate", "fate");
            sub("by", "actor");
            sub("with_nexthop", "nexthop_deletion");
        }
        "fate" | "origin" | "nexthop_deletion" => sub("by", "actor"),
        "added" => sub("restores", "origin"),
        "loop" => sub("suspect", "suspect"),
        "missing" => {
            sub("removed_by", "actor");
            sub("with_nexthop", "nexthop_deletion");
        }
        _ => {}
    }
}

/// A report with every kind of item and object.
fn sample() -> Value {
    serde_json::to_value(sample_report()).unwrap()
}

fn sample_report() -> super::model::Report {
    let ready = json!({"ts": "2026-04-10T06:00:00Z", "kind": "ready", "source": "tracepoint",
        "hooks": {}, "functions": {}, "kernel": "6.1", "version": "0.2.0", "pid": 10,
        "namespaces": [{"inode": 7, "name": "router"}]});
    let mut snap = json!({"ts": "2026-04-10T06:00:00.1Z", "kind": "snapshot", "source": "netlink",
        "netns": {"inode": 7, "name": "router"}});
    snap["rule"] = rule(5270, 52);
    let end = json!({"ts": "2026-04-10T06:00:00.2Z", "kind": "snapshot_end", "source": "netlink",
        "netns": {"inode": 7, "name": "router"}, "rules": 1, "routes": 0});
    let nd = || proc(812, "systemd-network", Some("systemd-networkd.service"));
    let ts = || proc(900, "tailscaled", None);
    let mut lp = fixture_line("lab-incident.jsonl", 11);
    lp["ts"] = json!("2026-04-10T06:53:00Z");
    let mut lines = vec![
        ready,
        snap,
        end,
        change(
            "2026-04-10T06:52:46Z",
            "rule_del",
            nd(),
            ("rule", rule(5270, 52)),
            "ok",
        ),
        change(
            "2026-04-10T06:52:46.1Z",
            "route_del",
            nd(),
            ("route", route("192.168.1.0/24", 52)),
            "ok",
        ),
        change(
            "2026-04-10T06:52:46.2Z",
            "route_del",
            nd(),
            ("route", route("10.0.0.0/8", 52)),
            "ESRCH",
        ),
        change(
            "2026-04-10T06:52:47Z",
            "rule_add",
            ts(),
            ("rule", rule(5270, 52)),
            "ok",
        ),
        json!({"ts": "2026-04-10T06:52:48Z", "kind": "lost", "source": "tracepoint", "count": 3, "location": "ring_buffer"}),
        json!({"ts": "2026-04-10T06:52:49Z", "kind": "journal_resumed", "source": "tracer", "path": "/j/x", "error": null, "dropped": 2}),
        json!({"ts": "2026-04-10T06:52:49Z", "kind": "guard_action", "source": "tracer"}),
        lp,
    ];
    // Nexthop objects: added, replaced, deleted with a route.
    lines.extend(nexthop_lines());
    let problem = Problem {
        at: Location {
            file: "j.jsonl".into(),
            line: 3,
        },
        message: "not JSON".into(),
        not_a_journal: false,
    };
    synthetic(&lines, &Select::default(), vec![problem])
}

#[test]
fn docs_report_md_describes_report_json() {
    let schema = parse_doc();
    let mut used = BTreeSet::new();
    check(&schema, "report", &sample(), "report", &mut used);
    let unused: Vec<_> = schema.keys().filter(|k| !used.contains(*k)).collect();
    assert!(
        unused.is_empty(),
        "docs/report.md tables no report uses: {unused:?}"
    );
}

#[test]
fn docs_report_md_example_follows_its_tables() {
    let schema = parse_doc();
    let example = DOC
        .split("```json\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .expect("docs/report.md has a JSON example");
    let v: Value = serde_json::from_str(example).expect("the example is JSON");
    check(&schema, "report", &v, "example", &mut BTreeSet::new());
}

/// The headings of docs/report.md's table of Markdown sections, in order.
fn doc_markdown_sections() -> Vec<String> {
    let start = DOC
        .find("<!-- markdown-sections -->")
        .expect("docs/report.md: <!-- markdown-sections --> marker");
    let end = DOC
        .find("<!-- /markdown-sections -->")
        .expect("docs/report.md: <!-- /markdown-sections --> marker");
    DOC[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect()
}

#[test]
fn docs_report_md_lists_the_markdown_sections_in_order() {
    // The lab's `watch --json` recording has no snapshot: every section,
    // gaps included, is there.
    let r = super::lab_tests::incident(&Select::default());
    let md = super::markdown::render(&r, super::words::Zone::Utc);
    let got: Vec<String> = md
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.replace("2026-11-24", "DATE").replace("(UTC)", "(ZONE)"))
        .collect();
    assert_eq!(got, doc_markdown_sections(), "{md}");
}

#[test]
fn docs_report_md_names_the_pictures_parts() {
    let html = super::html::render(&sample_report(), super::words::Zone::Utc);
    for part in [
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\"",
        "<g class=\"row\" data-changes=",
        "data-missing=",
        "<rect class=\"bar present\"",
        "<rect class=\"bar missing\"",
        "<g class=\"loop\">",
        "<g class=\"session\">",
        "<g class=\"snapshot\">",
        "<g class=\"lost\">",
        "<details>",
        "default-src 'none'; style-src 'unsafe-inline'",
    ] {
        assert!(html.contains(part), "no {part} in the page:\n{html}");
        let doc_name = part
            .split_once("class=\"")
            .map(|(_, c)| c.split(['"', ' ']).next().unwrap_or_default())
            .unwrap_or(part.trim_end_matches('='));
        assert!(
            DOC.contains(doc_name),
            "docs/report.md does not describe {doc_name}"
        );
    }
    for state in ["present", "missing", "gone", "replaced"] {
        assert!(
            DOC.contains(&format!("`{state}`")),
            "docs/report.md: bar {state}"
        );
    }
}
