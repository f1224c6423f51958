//! `journal`: a journal file or `watch --json` output, read as `report`,
//! `state` and `explain --at` read it (`journal::read`), then through what
//! reads its events: the report in every format, and each namespace's
//! state rebuilt and printed as `ip` prints it. Every event the reader
//! kept, written again as a JSON line, reads back as the same event.
//!
//! A NUL byte splits the input into two journals (two hosts' journals
//! merged by `report`).
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::{
    journal::{
        read::{Data, Entry, Location, Reader, parse_line},
        state::rebuild,
    },
    netlink::names::TableNames,
    report::{self, select::Select},
    state::ipstyle,
    zone::Zone,
};

pub fn journal(data: &[u8]) {
    let mut journals = Vec::new();
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for (i, part) in data.splitn(2, |b| *b == 0).enumerate() {
        let name = format!("journal-{i}.jsonl");
        let (entries, p) = Reader::from_bytes(&name, part.to_vec()).read_all();
        files.push(PathBuf::from(name));
        for e in &entries {
            round_trip(e);
        }
        journals.push(entries);
        problems.extend(p);
    }

    // `tracer state`: at the end, and at the first event.
    let all: Vec<Entry> = journals.iter().flatten().cloned().collect();
    let names = TableNames::default();
    for at in [None, all.first().map(|e| e.ts)] {
        let rebuilt = rebuild(all.iter().cloned().map(Ok), at, None);
        for ns in &rebuilt.spaces {
            for r in &ns.rules {
                ipstyle::rule(r, &names);
            }
            for r in &ns.routes {
                ipstyle::route(r, &names);
            }
        }
    }

    // `tracer report`, in every format.
    let r = report::of_journals(journals, problems, &files, &Select::default());
    serde_json::to_string(&r).expect("a report serialises");
    report::text::render(&r, Zone::Utc);
    report::markdown::render(&r, Zone::Utc);
    report::html::render(&r, Zone::Utc);
}

/// The event written as the tracer writes it, read back: the same event.
/// `loop*` and `ready` are left out (the reader keeps only part of them).
fn round_trip(e: &Entry) {
    let body = match &e.data {
        Data::Change(_, c) => serde_json::to_value(c),
        Data::Snapshot(s) => serde_json::to_value(s),
        Data::SnapshotEnd(s) => serde_json::to_value(s),
        Data::Lost(l) => serde_json::to_value(l),
        Data::Journal(j) => serde_json::to_value(j),
        Data::Other(v) => Ok(v.clone()),
        Data::Loop(..) | Data::Ready(_) => return,
    };
    let Ok(Value::Object(body)) = body else {
        panic!("{:?} does not serialise to an object", e.data);
    };
    let mut line = Map::new();
    // Nanoseconds: the reader keeps whatever the line had.
    line.insert(
        "ts".into(),
        e.ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            .into(),
    );
    line.insert("kind".into(), e.kind.clone().into());
    for (key, value) in [
        ("source", &e.source),
        ("host", &e.host),
        ("machine_id", &e.machine_id),
    ] {
        if let Some(v) = value {
            line.insert(key.into(), v.clone().into());
        }
    }
    for (k, v) in body {
        line.entry(k).or_insert(v);
    }
    let text = Value::Object(line).to_string();
    let at = Location {
        file: "again".into(),
        line: 1,
    };
    let back = match parse_line(at.clone(), text.as_bytes(), true) {
        Ok(Some(back)) => back,
        other => panic!("{e:?} written as {text} reads as {other:?}"),
    };
    let data = match &e.data {
        // Kept as written: the line as written again.
        Data::Other(_) => Data::Other(serde_json::from_str(&text).expect("our own JSON")),
        d => d.clone(),
    };
    assert_eq!(
        back,
        Entry {
            at,
            data,
            ..e.clone()
        },
        "written as {text}"
    );
}
