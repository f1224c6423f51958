//! Keeps docs/events.md in step with the JSON the tracer emits.
//!
//! The field tables in docs/events.md (`### <object>` followed by a
//! `| field | type | meaning |` table) are parsed and compared, both ways,
//! with the keys of serialized sample events covering every kind. Types are
//! compared with the JSON type of each sample value, documented enum values
//! with the enums' serde names, and the JSON examples in the document are
//! checked against the tables too.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::event::{
    Body, Cause, Change, Event, Family, GuardAction, GuardReport, JournalHealth, Kind, LoopLookup,
    LoopReport, Lost, NamespaceSeen, Netns, NextHop, PacketBrief, Process, Ready, Route, Rule,
    SnapshotEnd, Source, StateEntry, TableTry, WatchedIface,
};

const DOC: &str = include_str!("../../docs/events.md");
const DOC_PATH: &str = "docs/events.md";

/// The objects the document must describe, one table each.
const OBJECTS: [&str; 19] = [
    "event",
    "change",
    "lost",
    "ready",
    "loop",
    "snapshot",
    "snapshot_end",
    "namespace",
    "journal",
    "guard",
    "guard_action",
    "packet",
    "lookup",
    "table_try",
    "process",
    "netns",
    "rule",
    "route",
    "nexthop",
];
const TYPES: [&str; 5] = ["number", "string", "boolean", "object", "array"];

#[derive(Debug, Clone)]
struct Field {
    /// One of `TYPES`.
    ty: String,
    nullable: bool,
    /// The meaning says "(absent when ...)".
    may_be_absent: bool,
    meaning: String,
}

type Schema = BTreeMap<String, BTreeMap<String, Field>>;

/// Split a markdown table row into trimmed cells; `\|` is a literal pipe.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim();
    let inner = inner.strip_prefix('|').unwrap_or(inner);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// Parse the field tables of the document into object -> field -> Field.
fn parse_doc(doc: &str) -> Schema {
    let mut schema = Schema::new();
    let mut current: Option<String> = None;
    let mut in_table = false;
    let mut in_code = false;
    for (n, line) in doc.lines().enumerate() {
        let at = format!("{DOC_PATH}:{}", n + 1);
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(name) = line.strip_prefix("### ") {
            let name = name.trim().to_string();
            assert!(
                OBJECTS.contains(&name.as_str()),
                "{at}: unknown object heading `### {name}` (expected one of {OBJECTS:?})"
            );
            assert!(
                !schema.contains_key(&name),
                "{at}: object `{name}` is described twice"
            );
            current = Some(name);
            in_table = false;
            continue;
        }
        if line.starts_with('#') {
            current = None;
            in_table = false;
            continue;
        }
        if !line.trim_start().starts_with('|') {
            if in_table {
                // The table ended: one table per object.
                current = None;
                in_table = false;
            }
            continue;
        }
        let Some(object) = current.clone() else {
            panic!("{at}: table outside an object section");
        };
        let row = cells(line);
        if !in_table {
            assert_eq!(
                row,
                ["field", "type", "meaning"],
                "{at}: table header of `{object}` must be `| field | type | meaning |`"
            );
            in_table = true;
            schema.insert(object, BTreeMap::new());
            continue;
        }
        if row
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
        {
            continue; // separator
        }
        assert_eq!(
            row.len(),
            3,
            "{at}: row of `{object}` must have 3 cells: {line}"
        );
        let name = row[0]
            .strip_prefix('`')
            .and_then(|s| s.strip_suffix('`'))
            .unwrap_or_else(|| {
                panic!(
                    "{at}: field name of `{object}` must be in backticks: {}",
                    row[0]
                )
            });
        let (ty, nullable) = match row[1].strip_suffix("|null") {
            Some(base) => (base, true),
            None => (row[1].as_str(), false),
        };
        assert!(
            TYPES.contains(&ty),
            "{at}: {object}.{name} has unknown type `{}` (expected one of {TYPES:?}, optionally with |null)",
            row[1]
        );
        let field = Field {
            ty: ty.to_string(),
            nullable,
            may_be_absent: row[2].contains("(absent when"),
            meaning: row[2].clone(),
        };
        let fields = schema.get_mut(&object).expect("table started");
        assert!(
            fields.insert(name.to_string(), field).is_none(),
            "{at}: {object}.{name} is listed twice"
        );
    }
    for object in OBJECTS {
        assert!(
            schema.contains_key(object),
            "{DOC_PATH} has no `### {object}` field table"
        );
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

/// Compares emitted JSON objects with the documented tables.
struct Checker<'a> {
    schema: &'a Schema,
    /// Keys seen per object, over all samples.
    seen: BTreeMap<String, BTreeSet<String>>,
    errors: Vec<String>,
    /// Where the JSON came from, for messages ("sample route_del", "example line 3").
    origin: String,
}

impl Checker<'_> {
    fn object(&mut self, object: &str, map: &Map<String, Value>) {
        let fields = &self.schema[object];
        let seen = self.seen.entry(object.to_string()).or_default();
        for (key, value) in map {
            seen.insert(key.clone());
            let Some(field) = fields.get(key) else {
                self.errors.push(format!(
                    "{object}.{key} is emitted but not documented in {DOC_PATH} ({})",
                    self.origin
                ));
                continue;
            };
            let got = json_type(value);
            let ok = if value.is_null() {
                field.nullable
            } else {
                got == field.ty
            };
            if !ok {
                let documented = if field.nullable {
                    format!("{}|null", field.ty)
                } else {
                    field.ty.clone()
                };
                self.errors.push(format!(
                    "{object}.{key} is documented as {documented} in {DOC_PATH} but is emitted as {got} ({})",
                    self.origin
                ));
            }
        }
        for (name, field) in fields {
            if !map.contains_key(name) && !field.may_be_absent {
                self.errors.push(format!(
                    "{object}.{name} is missing from an emitted {object} but {DOC_PATH} does not say \"(absent when ...)\" ({})",
                    self.origin
                ));
            }
        }
    }

    /// Nested objects of a change or ready body.
    fn nested(&mut self, body: &Map<String, Value>) {
        for object in ["process", "netns", "rule", "route"] {
            if let Some(Value::Object(m)) = body.get(object) {
                self.object(object, m);
            }
        }
        for key in ["route", "old"] {
            if let Some(Value::Object(m)) = body.get(key) {
                if key == "old" {
                    self.object("route", m);
                }
                if let Some(Value::Array(hops)) = m.get("nexthops") {
                    for h in hops {
                        match h {
                            Value::Object(h) => self.object("nexthop", h),
                            other => self.errors.push(format!(
                                "route.nexthops holds a {} instead of nexthop objects",
                                json_type(other)
                            )),
                        }
                    }
                }
            }
        }
        for object in ["original", "looped"] {
            if let Some(Value::Object(m)) = body.get(object) {
                self.object("packet", m);
            }
        }
        if let Some(Value::Object(m)) = body.get("lookup") {
            self.object("lookup", m);
            if let Some(Value::Array(tries)) = m.get("tables_tried") {
                for t in tries {
                    match t {
                        Value::Object(m) => self.object("table_try", m),
                        other => self.errors.push(format!(
                            "lookup.tables_tried holds a {} instead of table_try objects",
                            json_type(other)
                        )),
                    }
                }
            }
        }
        for key in ["suspect", "change"] {
            if let Some(inner @ Value::Object(_)) = body.get(key) {
                let origin = self.origin.clone();
                self.origin = format!("{origin}, its {key}");
                self.event(inner, None);
                self.origin = origin;
            }
        }
        if let Some(Value::Array(spaces)) = body.get("namespaces") {
            for ns in spaces {
                match ns {
                    Value::Object(m) => self.object("netns", m),
                    other => self.errors.push(format!(
                        "ready.namespaces holds a {} instead of netns objects",
                        json_type(other)
                    )),
                }
            }
        }
    }

    /// A whole event line, split into common keys and the kind's own keys.
    /// `body_keys` are the keys the body serializes to on its own (from the
    /// code, not the document), or None to split by the documented tables.
    fn event(&mut self, line: &Value, body_keys: Option<BTreeSet<String>>) {
        let Value::Object(top) = line else {
            self.errors
                .push(format!("event is not a JSON object ({})", self.origin));
            return;
        };
        let kind = top.get("kind").and_then(Value::as_str).unwrap_or_default();
        let body_object = match kind {
            "rule_add" | "rule_del" | "route_add" | "route_del" | "route_replace" => "change",
            "lost" => "lost",
            "ready" => "ready",
            "loop" | "loop_summary" | "loop_end" => "loop",
            "snapshot" => "snapshot",
            "snapshot_end" => "snapshot_end",
            "journal_error" | "journal_resumed" => "journal",
            "guard_violation" | "guard_restored" => "guard",
            "guard_action" => "guard_action",
            "netns_new" | "netns_gone" => "namespace",
            other => {
                self.errors.push(format!(
                    "event.kind `{other}` is not a known kind ({})",
                    self.origin
                ));
                return;
            }
        };
        let body_keys = body_keys.unwrap_or_else(|| {
            top.keys()
                .filter(|k| !self.schema["event"].contains_key(*k))
                .cloned()
                .collect()
        });
        let (body, common): (Map<String, Value>, Map<String, Value>) = top
            .clone()
            .into_iter()
            .partition(|(k, _)| body_keys.contains(k));
        self.object("event", &common);
        self.object(body_object, &body);
        self.nested(&body);
    }
}

fn process() -> Process {
    Process {
        pid: 4242,
        tid: 4243,
        comm: "ip".into(),
        ppid: Some(4200),
        parent_comm: Some("bash".into()),
        exe: Some("/usr/sbin/ip".into()),
        uid: 0,
        cgroup: Some("/system.slice/foo.service".into()),
        unit: Some("foo.service".into()),
    }
}

fn netns() -> Netns {
    Netns {
        inode: Some(4026532177),
        name: Some("t1".into()),
    }
}

fn route() -> Route {
    Route {
        family: Some(Family::Inet),
        table: Some(254),
        table_name: Some("main".into()),
        rtype: Some("unicast".into()),
        dst: Some("10.20.0.0/16".into()),
        gateway: Some("192.168.7.1".into()),
        dev: Some("veth0".into()),
        ifindex: Some(4),
        metric: Some(100),
        protocol: Some("boot".into()),
        scope: Some("global".into()),
        nexthops: Vec::new(),
        nhid: None,
    }
}

/// A multipath route with a nexthop id, so `nexthops` and `nhid` appear.
fn multipath() -> Route {
    Route {
        gateway: None,
        dev: None,
        ifindex: None,
        nhid: Some(10),
        nexthops: vec![
            NextHop {
                gateway: Some("192.168.7.1".into()),
                dev: Some("veth0".into()),
                ifindex: Some(4),
                weight: 1,
                flags: vec!["onlink".into()],
            },
            NextHop {
                gateway: Some("192.168.8.1".into()),
                dev: Some("veth1".into()),
                ifindex: Some(5),
                weight: 2,
                flags: vec![],
            },
        ],
        ..route()
    }
}

fn rule() -> Rule {
    Rule {
        family: Some(Family::Inet6),
        priority: Some(100),
        table: Some(100),
        table_name: Some("vpn".into()),
        action: Some("table".into()),
        goto: Some(200),
        src: Some("2001:db8::/32".into()),
        dst: Some("2001:db8:1::/48".into()),
        fwmark: Some(51820),
        fwmask: Some(0xffff),
        iif: Some("eth0".into()),
        oif: Some("wg0".into()),
        uid_range: Some("1000-1999".into()),
        ipproto: Some(6),
        sport: Some("1024-65535".into()),
        dport: Some("443".into()),
        tos: Some(16),
        suppress_prefixlen: Some(0),
        invert: true,
        protocol: Some("static".into()),
    }
}

fn packet_brief(src: &str, ttl: u8) -> PacketBrief {
    PacketBrief {
        src: src.into(),
        dst: "192.168.1.90".into(),
        proto: "icmp".into(),
        ttl,
        id: Some(4660),
        len: 84,
        icmp_id: Some(7),
        icmp_seq: Some(1),
        sport: Some(4000),
        dport: Some(53),
    }
}

fn loop_body(full: bool) -> Body {
    let suspect = event(
        Kind::RouteDel,
        Source::Tracepoint,
        change(None, Some(route())),
    );
    Body::Loop(Box::new(LoopReport {
        netns: netns(),
        iface: "tailscale0".into(),
        family: Family::Inet,
        original: packet_brief("100.119.140.15", 64),
        looped: packet_brief("100.98.98.126", 63),
        snat: true,
        packets: 3,
        new_packets: 1,
        ttl_exceeded: 0,
        first_seen: "2026-11-24T19:10:39.258986Z".into(),
        last_seen: "2026-11-24T19:10:41.258986Z".into(),
        lookup: full.then(|| LoopLookup {
            table: Some(52),
            table_name: Some("tailscale".into()),
            rule_priority: Some(5270),
            route: Some("default dev tailscale0".into()),
            result_dev: Some("tailscale0".into()),
            tables_tried: vec![TableTry {
                table: 52,
                err: Some("EAGAIN".into()),
            }],
        }),
        suspect: full.then(|| Box::new(suspect)),
        advice: "a route covering 192.168.1.90 in table 52 is missing".into(),
    }))
}

fn change(rule: Option<Rule>, route: Option<Route>) -> Body {
    Body::Change(Box::new(Change {
        process: Some(std::sync::Arc::new(process())),
        netns: netns(),
        rule,
        route,
        result: Some("ok".into()),
        cause: Some(Cause::LinkDown),
        old: None,
        nl_seq: Some(1795547440),
        note: Some("changed by the kernel after link_down by this process".into()),
    }))
}

fn event(kind: Kind, source: Source, body: Body) -> Event {
    Event {
        ts: "2026-11-24T19:10:39.258986Z".into(),
        kind,
        source,
        body,
    }
}

/// Every kind, with every Option filled (so every key appears), plus the
/// same changes with every Option empty (so nulls and absent keys appear).
fn samples() -> Vec<Event> {
    let empty_change = |rule, route| {
        Body::Change(Box::new(Change {
            process: None,
            netns: Netns::default(),
            rule,
            route,
            result: None,
            cause: None,
            old: None,
            nl_seq: None,
            note: None,
        }))
    };
    vec![
        event(
            Kind::RouteDel,
            Source::Tracepoint,
            change(None, Some(route())),
        ),
        event(Kind::RouteAdd, Source::Fentry, change(None, Some(route()))),
        event(
            Kind::RouteAdd,
            Source::Fentry,
            change(None, Some(multipath())),
        ),
        event(Kind::RouteReplace, Source::Tracepoint, {
            let Body::Change(mut c) = change(None, Some(route())) else {
                unreachable!()
            };
            c.old = Some(Route {
                rtype: Some("blackhole".into()),
                gateway: None,
                ..route()
            });
            Body::Change(c)
        }),
        event(Kind::RuleAdd, Source::Kprobe, change(Some(rule()), None)),
        event(Kind::RuleDel, Source::Netlink, change(Some(rule()), None)),
        event(
            Kind::RouteAdd,
            Source::Netlink,
            empty_change(None, Some(Route::default())),
        ),
        event(
            Kind::RuleDel,
            Source::Netlink,
            empty_change(Some(Rule::default()), None),
        ),
        event(
            Kind::Lost,
            Source::Tracepoint,
            Body::Lost(Lost {
                count: 37,
                location: "ring_buffer".into(),
            }),
        ),
        event(Kind::Loop, Source::Tracepoint, loop_body(true)),
        event(Kind::LoopSummary, Source::Tracepoint, loop_body(false)),
        event(Kind::LoopEnd, Source::Tracepoint, loop_body(true)),
        event(
            Kind::Snapshot,
            Source::Netlink,
            Body::State(Box::new(StateEntry {
                netns: netns(),
                rule: None,
                route: Some(route()),
            })),
        ),
        event(
            Kind::Snapshot,
            Source::Netlink,
            Body::State(Box::new(StateEntry {
                netns: netns(),
                rule: Some(rule()),
                route: None,
            })),
        ),
        event(
            Kind::SnapshotEnd,
            Source::Netlink,
            Body::SnapshotEnd(SnapshotEnd {
                netns: netns(),
                rules: 7,
                routes: 4,
            }),
        ),
        event(
            Kind::NetnsNew,
            Source::Tracer,
            Body::Namespace(NamespaceSeen { netns: netns() }),
        ),
        event(
            Kind::NetnsGone,
            Source::Tracer,
            Body::Namespace(NamespaceSeen { netns: netns() }),
        ),
        event(
            Kind::JournalError,
            Source::Tracer,
            Body::Journal(JournalHealth {
                path: "/var/lib/tracer/journal/tracer-20261124T191037.719378Z.jsonl".into(),
                error: Some("No space left on device (os error 28)".into()),
                dropped: 0,
            }),
        ),
        event(
            Kind::JournalResumed,
            Source::Tracer,
            Body::Journal(JournalHealth {
                path: "/var/lib/tracer/journal/tracer-20261124T191037.719378Z.jsonl".into(),
                error: None,
                dropped: 12,
            }),
        ),
        event(
            Kind::GuardViolation,
            Source::Tracer,
            Body::Guard(GuardReport {
                expectation: "throw 192.168.1.0/24 table 52".into(),
                netns: netns(),
                since: "2026-11-24T19:10:39.258986Z".into(),
                grace_secs: 5.0,
                change: Some(Box::new(event(
                    Kind::RouteDel,
                    Source::Tracepoint,
                    change(None, Some(route())),
                ))),
            }),
        ),
        event(
            Kind::GuardViolation,
            Source::Tracer,
            Body::Guard(GuardReport {
                expectation: "rule 5270 table 52".into(),
                netns: netns(),
                since: "2026-11-24T19:10:39.258986Z".into(),
                grace_secs: 5.0,
                change: None,
            }),
        ),
        event(
            Kind::GuardAction,
            Source::Tracer,
            Body::GuardAction(GuardAction {
                expectation: "throw 192.168.1.0/24 table 52".into(),
                command: "logger -t tracer".into(),
                exit_code: Some(0),
                error: Some("timed out after 10 s".into()),
                stdout: String::new(),
                stderr: String::new(),
                duration_ms: 12,
                suppressed: 0,
            }),
        ),
        event(
            Kind::GuardAction,
            Source::Tracer,
            Body::GuardAction(GuardAction {
                expectation: "throw 192.168.1.0/24 table 52".into(),
                command: "false".into(),
                exit_code: None,
                error: None,
                stdout: String::new(),
                stderr: String::new(),
                duration_ms: 1,
                suppressed: 3,
            }),
        ),
        event(
            Kind::Ready,
            Source::Fentry,
            Body::Ready(Ready {
                hooks: [("route4_add".to_string(), Source::Fentry)].into(),
                functions: [("route4_add".to_string(), "fib_table_insert".to_string())].into(),
                kernel: "6.18.44".into(),
                version: "0.1.0".into(),
                pid: 28919,
                namespaces: vec![netns()],
                ifaces: vec![WatchedIface {
                    iface: "router:tailscale0".into(),
                    via: Some("tc"),
                    hook: Some("clsact"),
                }],
            }),
        ),
    ]
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn check_samples(schema: &Schema) -> Vec<String> {
    let mut checker = Checker {
        schema,
        seen: BTreeMap::new(),
        errors: Vec::new(),
        origin: String::new(),
    };
    for e in samples() {
        checker.origin = format!("sample {}", e.kind.as_str());
        let line = serde_json::to_value(&e).expect("event serializes");
        let body_keys = keys(&serde_json::to_value(&e.body).expect("body serializes"));
        checker.event(&line, Some(body_keys));
    }
    let mut errors = dedup(checker.errors);
    for (object, fields) in schema {
        let seen = checker.seen.get(object).cloned().unwrap_or_default();
        for name in fields.keys().filter(|n| !seen.contains(*n)) {
            errors.push(format!(
                "{object}.{name} is documented in {DOC_PATH} but never emitted"
            ));
        }
    }
    errors
}

/// Drop repeats of a message that differ only in the trailing "(origin)".
fn dedup(errors: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    errors
        .into_iter()
        .filter(|e| {
            seen.insert(
                e.rsplit_once(" (")
                    .map_or(e.as_str(), |(m, _)| m)
                    .to_string(),
            )
        })
        .collect()
}

fn fail_on(errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "{DOC_PATH} and the emitted JSON disagree:\n  {}",
        errors.join("\n  ")
    );
}

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
        Kind::NetnsNew,
        Kind::NetnsGone,
    ];
    all.iter().for_each(|k| match k {
        Kind::RuleAdd
        | Kind::RuleDel
        | Kind::RouteAdd
        | Kind::RouteDel
        | Kind::RouteReplace
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
        Source::Tracer,
    ];
    all.iter().for_each(|s| match s {
        Source::Fentry | Source::Kprobe | Source::Tracepoint | Source::Netlink | Source::Tracer => {
        }
    });
    all
}

fn all_causes() -> Vec<Cause> {
    let all = vec![
        Cause::LinkDown,
        Cause::LinkDel,
        Cause::AddrDel,
        Cause::NetnsExit,
        Cause::LinkUp,
        Cause::AddrAdd,
        Cause::Unknown,
    ];
    all.iter().for_each(|c| match c {
        Cause::LinkDown
        | Cause::LinkDel
        | Cause::AddrDel
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
fn documented_fields_match_emitted_json() {
    let schema = parse_doc(DOC);
    fail_on(check_samples(&schema));
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
    let mut checker = Checker {
        schema: &schema,
        seen: BTreeMap::new(),
        errors: Vec::new(),
        origin: String::new(),
    };
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

#[test]
fn drift_is_reported() {
    // Drift the parsed tables (not the document text, so this keeps working
    // as the prose changes): an undocumented key, a documented field that is
    // never emitted and a wrong type are all caught, naming object and field.
    let mut schema = parse_doc(DOC);
    let route = schema.get_mut("route").unwrap();
    let metric = route.remove("metric").expect("route.metric is documented");
    route.insert("metrik".into(), metric);
    schema
        .get_mut("process")
        .unwrap()
        .get_mut("pid")
        .expect("process.pid is documented")
        .ty = "string".into();
    let errors = check_samples(&schema);
    let has = |prefix: &str| errors.iter().any(|e| e.starts_with(prefix));
    assert!(
        has("route.metric is emitted but not documented in docs/events.md"),
        "{errors:#?}"
    );
    assert!(
        has("route.metrik is documented in docs/events.md but never emitted"),
        "{errors:#?}"
    );
    assert!(
        has("process.pid is documented as string in docs/events.md but is emitted as number"),
        "{errors:#?}"
    );
}
