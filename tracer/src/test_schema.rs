//! docs/events.md's field tables, parsed, and the checker that compares
//! JSON objects with them: the shared part of the schema tests
//! (`schema_emitted_tests`, `schema_doc_tests`).
//!
//! The field tables (`### <object>` followed by a `| field | type | meaning
//! |` table) map object -> field -> type, nullability and meaning. Types are
//! compared with the JSON type of each value; a key the tables do not list,
//! or a listed field missing without "(absent when ...)", is an error.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

pub const DOC: &str = include_str!("../../docs/events.md");
pub const DOC_PATH: &str = "docs/events.md";

/// The objects the document must describe, one table each.
const OBJECTS: [&str; 24] = [
    "event",
    "change",
    "lost",
    "ready",
    "loop",
    "snapshot",
    "snapshot_end",
    "journal",
    "guard",
    "guard_action",
    "guard_repair",
    "guard_reloaded",
    "namespace",
    "packet",
    "lookup",
    "table_try",
    "process",
    "netns",
    "rule",
    "route",
    "hop",
    "nexthop",
    "group_member",
    "resilient",
];
const TYPES: [&str; 5] = ["number", "string", "boolean", "object", "array"];

#[derive(Debug, Clone)]
pub struct Field {
    /// One of `TYPES`.
    pub ty: String,
    pub nullable: bool,
    /// The meaning says "(absent when ...)".
    pub may_be_absent: bool,
    pub meaning: String,
}

pub type Schema = BTreeMap<String, BTreeMap<String, Field>>;

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
pub fn parse_doc(doc: &str) -> Schema {
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
pub struct Checker<'a> {
    schema: &'a Schema,
    /// Keys seen per object, over all samples.
    pub seen: BTreeMap<String, BTreeSet<String>>,
    pub errors: Vec<String>,
    /// Where the JSON came from, for messages ("sample route_del", "example line 3").
    pub origin: String,
}

impl<'a> Checker<'a> {
    pub fn new(schema: &'a Schema) -> Checker<'a> {
        Checker {
            schema,
            seen: BTreeMap::new(),
            errors: Vec::new(),
            origin: String::new(),
        }
    }

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
                            Value::Object(h) => self.object("hop", h),
                            other => self.errors.push(format!(
                                "route.nexthops holds a {} instead of hop objects",
                                json_type(other)
                            )),
                        }
                    }
                }
            }
        }
        for key in ["nexthop", "old_nexthop"] {
            if let Some(Value::Object(m)) = body.get(key) {
                self.object("nexthop", m);
                if let Some(Value::Array(members)) = m.get("group") {
                    for g in members {
                        match g {
                            Value::Object(g) => self.object("group_member", g),
                            other => self.errors.push(format!(
                                "nexthop.group holds a {} instead of group_member objects",
                                json_type(other)
                            )),
                        }
                    }
                }
                if let Some(Value::Object(r)) = m.get("resilient") {
                    self.object("resilient", r);
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
        for key in ["suspect", "change", "removal"] {
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
    pub fn event(&mut self, line: &Value, body_keys: Option<BTreeSet<String>>) {
        let Value::Object(top) = line else {
            self.errors
                .push(format!("event is not a JSON object ({})", self.origin));
            return;
        };
        let kind = top.get("kind").and_then(Value::as_str).unwrap_or_default();
        let body_object = match kind {
            "rule_add" | "rule_del" | "route_add" | "route_del" | "route_replace"
            | "nexthop_add" | "nexthop_del" | "nexthop_replace" => "change",
            "lost" => "lost",
            "ready" => "ready",
            "loop" | "loop_summary" | "loop_end" => "loop",
            "snapshot" => "snapshot",
            "snapshot_end" => "snapshot_end",
            "journal_error" | "journal_resumed" => "journal",
            "guard_violation" | "guard_restored" => "guard",
            "guard_action" => "guard_action",
            "guard_repair" | "guard_repair_waiting" | "guard_repair_gave_up" => "guard_repair",
            "guard_reloaded" => "guard_reloaded",
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

/// Drop repeats of a message that differ only in the trailing "(origin)".
pub fn dedup(errors: Vec<String>) -> Vec<String> {
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

pub fn fail_on(errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "{DOC_PATH} and the emitted JSON disagree:\n  {}",
        errors.join("\n  ")
    );
}
