//! The request-form corpus (tests/forms/*.forms, format in
//! tests/forms/README.md): parsing, and matching an event against a case's
//! expectation.
use std::path::PathBuf;

use serde_json::Value;

/// One field an event must carry: `path` is dotted (`route.dst`,
/// `old.gateway`); `event_only` fields (written `+path=...`) come from the
/// kernel's answer, not from the request's bytes.
#[derive(Clone, Debug)]
pub struct Field {
    pub path: String,
    pub value: Value,
    pub event_only: bool,
}

/// One event a case must produce.
#[derive(Clone, Debug)]
pub struct Expect {
    pub kind: String,
    /// "ok", or the kernel's error name.
    pub result: String,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, Default)]
pub struct Case {
    pub file: String,
    pub name: String,
    pub client: String,
    pub cmd: Option<String>,
    pub batch: Vec<String>,
    pub pre: Vec<String>,
    pub send: String,
    /// Datagrams, each a list of messages.
    pub dgrams: Vec<Vec<Vec<u8>>>,
    pub expects: Vec<Expect>,
}

impl Case {
    /// A case `ip` itself can run (`cmd` or `batch`), as opposed to bytes
    /// only a replay can send.
    pub fn by_ip(&self) -> bool {
        self.client == "iproute2" && (self.cmd.is_some() || !self.batch.is_empty())
    }
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("forms")
}

/// A value as written in an `expect` line: JSON when it parses, else a
/// string (`10.1.0.0/16`, `d0`).
pub fn value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// Parse one corpus file.
pub fn parse(file: &str, text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split("  #").next().unwrap_or("").trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        if key == "case" {
            cases.push(Case {
                file: file.to_string(),
                name: rest.to_string(),
                ..Case::default()
            });
            continue;
        }
        let c = cases
            .last_mut()
            .unwrap_or_else(|| panic!("{file}:{}: {key} before any case", i + 1));
        match key {
            "client" => c.client = rest.to_string(),
            "cmd" => c.cmd = Some(rest.to_string()),
            "batch" => c.batch.push(rest.to_string()),
            "pre" => c.pre.push(rest.to_string()),
            "send" => c.send = rest.to_string(),
            "capture" | "note" | "run" | "mode" | "group" | "pick" => {}
            "dgram" => c.dgrams.push(Vec::new()),
            "msg" => {
                let hex = rest.split_whitespace().next().unwrap_or("");
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|j| u8::from_str_radix(&hex[j..j + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .unwrap_or_else(|e| panic!("{file}:{}: bad hex: {e}", i + 1));
                if c.dgrams.is_empty() {
                    c.dgrams.push(Vec::new());
                }
                c.dgrams.last_mut().unwrap().push(bytes);
            }
            "expect" => {
                let mut words = rest.split_whitespace();
                let kind = words.next().unwrap_or_default().to_string();
                let mut e = Expect {
                    kind,
                    result: "ok".into(),
                    fields: Vec::new(),
                };
                for w in words {
                    let (k, v) = w
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{file}:{}: {w} is not key=value", i + 1));
                    if k == "result" {
                        e.result = v.to_string();
                        continue;
                    }
                    let (path, event_only) = match k.strip_prefix('+') {
                        Some(p) => (p.to_string(), true),
                        None => (k.to_string(), false),
                    };
                    e.fields.push(Field {
                        path,
                        value: value(v),
                        event_only,
                    });
                }
                c.expects.push(e);
            }
            _ => panic!("{file}:{}: unknown line {line}", i + 1),
        }
    }
    for c in &cases {
        assert!(
            !c.dgrams.is_empty() && !c.send.is_empty() && !c.expects.is_empty(),
            "{file}: case {} needs msg, send and expect lines",
            c.name
        );
    }
    cases
}

/// Every case of the named corpus files (`iproute2` for
/// tests/forms/iproute2.forms), in file order.
pub fn load(files: &[&str]) -> Vec<Case> {
    files
        .iter()
        .flat_map(|f| {
            let p = dir().join(format!("{f}.forms"));
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            parse(f, &text)
        })
        .collect()
}

/// Does `actual` satisfy `expected`? Objects: every expected key matches;
/// arrays: same length, element by element; `"*"`: anything but null.
pub fn matches(expected: &Value, actual: &Value) -> bool {
    match expected {
        Value::String(s) if s == "*" => !actual.is_null(),
        Value::Object(m) => m.iter().all(|(k, v)| matches(v, &actual[k.as_str()])),
        Value::Array(a) => actual
            .as_array()
            .is_some_and(|b| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| matches(x, y))),
        _ => expected == actual,
    }
}

/// The field at a dotted path.
pub fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// What is wrong with `event` as the answer to `want` (empty: nothing).
pub fn mismatches(want: &Expect, event: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if event["kind"] != want.kind.as_str() {
        out.push(format!("kind {} (want {})", event["kind"], want.kind));
    }
    if event["result"] != want.result.as_str() {
        out.push(format!("result {} (want {})", event["result"], want.result));
    }
    for f in &want.fields {
        let got = at(event, &f.path);
        if !matches(&f.value, got) {
            let plus = if f.event_only { "+" } else { "" };
            out.push(format!("{plus}{} = {got} (want {})", f.path, f.value));
        }
    }
    out
}
