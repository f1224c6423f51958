//! Every request of the request-form corpus (tests/forms/*.forms: real
//! bytes captured from iproute2, systemd-networkd, libnl, Go netlink and raw
//! senders) decodes without error into the rule or route its case expects.
//! Fields written `+path=...` in the corpus come from the kernel's answer,
//! not from the request, and are not checked here; nor is `dev`, which a
//! request gives as an interface index.
use serde_json::Value;

use super::decode::{NlObj, decode_buffer};
use crate::event::Op;

const CORPUS: &[(&str, &str)] = &[
    (
        "iproute2-rule",
        include_str!("../../../tests/forms/iproute2-rule.forms"),
    ),
    (
        "iproute2-route",
        include_str!("../../../tests/forms/iproute2-route.forms"),
    ),
    (
        "networkd",
        include_str!("../../../tests/forms/networkd.forms"),
    ),
    ("libnl", include_str!("../../../tests/forms/libnl.forms")),
    ("go", include_str!("../../../tests/forms/go.forms")),
    ("raw", include_str!("../../../tests/forms/raw.forms")),
];

const NLM_F_REPLACE: u16 = 0x100;

struct Case {
    name: String,
    dgrams: Vec<Vec<u8>>,
    /// kind, then (path, value) of the fields the request itself carries.
    expects: Vec<(String, Vec<(String, Value)>)>,
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn parse(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        let line = line.split("  #").next().unwrap_or("");
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let Some(c) = cases.last_mut() else {
            if key == "case" {
                cases.push(Case {
                    name: rest.into(),
                    dgrams: Vec::new(),
                    expects: Vec::new(),
                });
            }
            continue;
        };
        match key {
            "case" => cases.push(Case {
                name: rest.into(),
                dgrams: Vec::new(),
                expects: Vec::new(),
            }),
            "dgram" => c.dgrams.push(Vec::new()),
            "msg" => {
                if c.dgrams.is_empty() {
                    c.dgrams.push(Vec::new());
                }
                let mut m = unhex(rest.split_whitespace().next().unwrap_or(""));
                m.resize(m.len().div_ceil(4) * 4, 0);
                c.dgrams.last_mut().unwrap().extend(m);
            }
            "expect" => {
                let mut w = rest.split_whitespace();
                let kind = w.next().unwrap_or_default().to_string();
                let fields = w
                    .filter_map(|kv| kv.split_once('='))
                    .filter(|(k, _)| k.starts_with("rule.") || k.starts_with("route."))
                    .filter(|(k, _)| *k != "route.dev")
                    .map(|(k, v)| {
                        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.into()));
                        (k.to_string(), v)
                    })
                    .collect();
                c.expects.push((kind, fields));
            }
            _ => {}
        }
    }
    cases
}

/// `expected` against `actual` as tests/common/forms.rs matches events, but
/// with `dev` left out of objects (a request names devices by index).
fn matches(expected: &Value, actual: &Value) -> bool {
    match expected {
        Value::String(s) if s == "*" => !actual.is_null(),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.as_str() != "dev")
            .all(|(k, v)| matches(v, &actual[k.as_str()])),
        Value::Array(a) => actual
            .as_array()
            .is_some_and(|b| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| matches(x, y))),
        _ => expected == actual,
    }
}

/// What is wrong with one case's decoding (empty: nothing).
fn check(c: &Case) -> Vec<String> {
    let mut bad = Vec::new();
    let mut items = Vec::new();
    for d in &c.dgrams {
        let (it, errors) = decode_buffer(d);
        bad.extend(errors.iter().map(|e| format!("decode error: {e}")));
        items.extend(it);
    }
    if items.len() != c.expects.len() {
        bad.push(format!(
            "{} message(s) decoded, {} expected",
            items.len(),
            c.expects.len()
        ));
    }
    for (i, ((kind, fields), item)) in c.expects.iter().zip(&items).enumerate() {
        let (op, obj, what) = match &item.obj {
            NlObj::Rule { op, rule } => (*op, serde_json::to_value(rule), "rule"),
            NlObj::Route { op, route } => (*op, serde_json::to_value(route), "route"),
            other => {
                bad.push(format!("#{}: not a rule or route: {other:?}", i + 1));
                continue;
            }
        };
        let want_op = if kind.ends_with("_del") {
            Op::Del
        } else {
            Op::Add
        };
        if !kind.starts_with(what) || op != want_op {
            bad.push(format!("#{}: a {what} {op:?}, expected {kind}", i + 1));
        }
        if kind == "route_replace" && item.flags & NLM_F_REPLACE == 0 {
            bad.push(format!("#{}: route_replace without NLM_F_REPLACE", i + 1));
        }
        let obj = serde_json::json!({ what: obj.expect("serializes") });
        for (path, want) in fields {
            let got = path.split('.').fold(&obj, |v, k| &v[k]);
            if !matches(want, got) {
                bad.push(format!("#{}: {path} = {got} (want {want})", i + 1));
            }
        }
    }
    bad
}

fn check_file(file: &str) {
    let (_, text) = CORPUS
        .iter()
        .find(|(f, _)| *f == file)
        .expect("corpus file");
    let cases = parse(text);
    assert!(!cases.is_empty(), "no cases in {file}.forms");
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let bad = check(c);
            (!bad.is_empty()).then(|| format!("{}: {}", c.name, bad.join("; ")))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests of tests/forms/{file}.forms do not decode as expected:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

#[test]
fn iproute2_rule_requests_decode() {
    check_file("iproute2-rule");
}

#[test]
fn iproute2_route_requests_decode() {
    check_file("iproute2-route");
}

#[test]
fn systemd_networkd_requests_decode() {
    check_file("networkd");
}

#[test]
fn libnl_requests_decode() {
    check_file("libnl");
}

#[test]
fn go_netlink_requests_decode() {
    check_file("go");
}

#[test]
fn raw_requests_decode() {
    check_file("raw");
}
