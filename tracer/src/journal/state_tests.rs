use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::*;
use crate::journal::read::{Reader, inputs};

fn recorded() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab-recorded.journal");
    inputs(&[], &[dir]).unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn has_throw(s: &NsState) -> bool {
    s.routes
        .iter()
        .any(|r| r.rtype.as_deref() == Some("throw") && r.dst.as_deref() == Some("192.168.1.0/24"))
}

fn prios(s: &NsState) -> Vec<u32> {
    s.rules
        .iter()
        .filter(|r| r.family == Some(crate::event::Family::Inet))
        .map(|r| r.priority.unwrap_or(0))
        .collect()
}

#[test]
fn the_snapshot_then_the_changes_up_to_the_moment() {
    let before = rebuild(
        Reader::new(recorded()),
        Some(t("2026-11-24T22:55:04Z")),
        None,
    );
    let s = before.pick(None).unwrap();
    assert_eq!(s.netns.name.as_deref(), Some("rep-300-r"));
    assert_eq!((s.rules.len(), s.routes.len(), s.changes), (11, 27, 0));
    assert!(has_throw(s));
    assert!(s.caveats.is_empty(), "{:?}", s.caveats);

    // Mid-flush: the rules are gone, the throw route not yet.
    let mid = rebuild(
        Reader::new(recorded()),
        Some(t("2026-11-24T22:55:04.988850Z")),
        None,
    );
    let s = mid.pick(Some("rep-300-r")).unwrap();
    assert_eq!(prios(s), [0, 32766, 32767]);
    assert!(has_throw(s));

    // After the partial restore: the rules back in order, the throw gone.
    let after = rebuild(
        Reader::new(recorded()),
        Some(t("2026-11-24T22:55:06Z")),
        Some(t("2026-11-24T22:55:04Z")),
    );
    let s = after.pick(None).unwrap();
    assert_eq!(prios(s), [0, 5210, 5230, 5250, 5270, 32766, 32767]);
    assert!(!has_throw(s));
    assert_eq!(s.changes, 9);
    assert_eq!(after.log.len(), 9);
    assert_eq!(
        after.log[4].process.as_ref().unwrap().comm,
        "systemd-network"
    );
}

#[test]
fn nothing_before_the_first_event_and_unknown_namespaces_are_named() {
    let r = rebuild(
        Reader::new(recorded()),
        Some(t("2026-11-24T22:00:00Z")),
        None,
    );
    assert!(r.spaces.is_empty());
    assert_eq!(r.first_ts, Some(t("2026-11-24T22:55:03.835829Z")));
    assert_eq!(r.first_snapshot, Some(t("2026-11-24T22:55:03.835911Z")));
    assert_eq!(
        r.nothing_before("--at X", crate::event::format_ts),
        "--at X is before the journal's first snapshot (2026-11-24T22:55:03.835911Z): the state then is not known"
    );
    let r = rebuild(Reader::new(recorded()), None, None);
    let e = r.pick(Some("nosuch")).unwrap_err();
    assert_eq!(
        e,
        "netns nosuch is not in the journal (it holds: rep-300-r)"
    );
}

#[test]
fn lost_records_and_unknown_outcomes_are_caveats() {
    let text = std::fs::read_to_string(&recorded()[0]).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.contains("\"kind\":\"rule_del\""))
        .unwrap();
    lines.insert(
        at,
        r#"{"ts":"2026-11-24T22:55:04.500000Z","kind":"lost","source":"tracepoint","count":3,"location":"ring_buffer"}"#.into(),
    );
    let dir = std::env::temp_dir().join(format!("tracer-state-gap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("tracer-20261124T225503.000000Z.jsonl");
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    let r = rebuild(Reader::new(vec![f]), None, None);
    let s = r.pick(None).unwrap();
    assert_eq!(s.caveats.len(), 1, "{:?}", s.caveats);
    assert!(
        s.caveats[0].starts_with("3 records lost (ring_buffer) at 2026-11-24T22:55:04.500000Z")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rules_of_equal_priority_keep_their_order_and_replacements_replace() {
    let mut s = NsState::default();
    let r = |prio: u32, table: u32| Rule {
        priority: Some(prio),
        table: Some(table),
        action: Some("table".into()),
        ..Rule::default()
    };
    s.rule(Op::Add, &r(100, 1));
    s.rule(Op::Add, &r(50, 2));
    s.rule(Op::Add, &r(100, 3));
    let tables: Vec<u32> = s.rules.iter().map(|x| x.table.unwrap()).collect();
    assert_eq!(tables, [2, 1, 3]);
    assert!(s.rule(Op::Del, &r(100, 1)));
    assert!(!s.rule(Op::Del, &r(100, 1)));
    let route = |t: &str| Route {
        table: Some(52),
        dst: Some("192.168.1.0/24".into()),
        rtype: Some(t.to_string().into()),
        ..Route::default()
    };
    s.add_route(&route("blackhole"), None);
    s.add_route(&route("throw"), Some(&route("blackhole")));
    assert_eq!(s.routes, [route("throw")]);
    assert!(s.del_route(&route("throw")));
    assert!(s.routes.is_empty());
}
