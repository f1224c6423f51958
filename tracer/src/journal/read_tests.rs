use std::{fs, path::Path};

use super::*;
use crate::event::Op;

const INCIDENT: &str = include_str!("../../tests/fixtures/lab-incident.jsonl");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("tracer-read-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn file(&self, name: &str, text: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn read(files: Vec<PathBuf>) -> (Vec<Entry>, Vec<String>) {
    let (e, p) = Reader::new(files).read_all();
    (e, p.iter().map(ToString::to_string).collect())
}

fn line(text: &str) -> Result<Option<Entry>, Problem> {
    parse_line(
        Location {
            file: Arc::from("t.jsonl"),
            line: 7,
        },
        text.as_bytes(),
        true,
    )
}

#[test]
fn the_lab_recording_reads_back_typed() {
    let (entries, problems) = read(vec![fixtures().join("lab-incident.jsonl")]);
    assert_eq!(problems, Vec::<String>::new());
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ready",
            "rule_del",
            "rule_del",
            "rule_del",
            "rule_del",
            "route_del",
            "rule_add",
            "rule_add",
            "rule_add",
            "rule_add",
            "loop",
            "loop_summary",
            "loop_summary",
            "loop_summary",
            "loop_end"
        ]
    );
    assert_eq!(entries[1].at.line, 2);
    assert!(entries[1].at.file.ends_with("lab-incident.jsonl"));
    assert_eq!(entries[1].source.as_deref(), Some("tracepoint"));
    let Data::Change(Op::Del, c) = &entries[5].data else {
        panic!("{:?}", entries[5].data)
    };
    let r = c.route.as_ref().unwrap();
    assert_eq!(
        (r.rtype.as_deref(), r.dst.as_deref(), r.table),
        (Some("throw"), Some("192.168.1.0/24"), Some(52))
    );
    assert_eq!(c.process.as_deref().unwrap().comm, "systemd-network");
    let Data::Change(Op::Add, c) = &entries[6].data else {
        panic!()
    };
    assert_eq!(c.rule.as_ref().unwrap().priority, Some(5210));
    let Data::Loop(LoopPhase::Start, l) = &entries[10].data else {
        panic!()
    };
    assert_eq!(
        (l.iface.as_str(), l.original.dst.as_str()),
        ("tailscale0", "192.168.1.90")
    );
    let s = l.suspect.as_ref().unwrap();
    assert_eq!(s.kind, "route_del");
    assert_eq!(
        s.change.route.as_ref().unwrap().dst.as_deref(),
        Some("192.168.1.0/24")
    );
    assert_eq!(l.lookup.as_ref().unwrap().rule_priority, Some(5270));
    assert!(matches!(entries[14].data, Data::Loop(LoopPhase::End, _)));
    let Data::Ready(r) = &entries[0].data else {
        panic!()
    };
    assert_eq!(r.version.as_deref(), Some("0.1.0"));
    assert_eq!(r.namespaces.len(), 1);
    assert_eq!(
        entries[1].ts,
        DateTime::parse_from_rfc3339("2026-11-24T22:32:39.786625Z").unwrap()
    );
}

#[test]
fn a_journal_directory_is_read_in_name_order() {
    let dir = fixtures().join("lab-recovered.journal");
    let files = journal_files(&dir).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "tracer-20261124T223250.534106Z.jsonl",
            "tracer-20261124T223258.695117Z.jsonl"
        ]
    );
    let (entries, problems) = read(files);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(entries.len(), 16);
    assert!(entries.windows(2).all(|w| w[0].ts <= w[1].ts));
    assert_eq!(entries[15].kind, "route_add");
    assert_eq!(entries[15].at.line, 1);
}

#[test]
fn only_journal_files_are_listed_and_sorted() {
    let t = TempDir::new("list");
    t.file("tracer-20260410T155246.000000Z.jsonl", b"");
    t.file("tracer-20260410T065246.000000Z.jsonl", b"");
    t.file("notes.txt", b"x");
    t.file("tracer-20260410T065246.000000Z.jsonl.tmp", b"x");
    fs::create_dir(t.0.join("sub")).unwrap();
    let names: Vec<_> = journal_files(&t.0)
        .unwrap()
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "tracer-20260410T065246.000000Z.jsonl",
            "tracer-20260410T155246.000000Z.jsonl"
        ]
    );
}

#[test]
fn missing_empty_and_non_directories_are_clear_errors() {
    let t = TempDir::new("bad-dirs");
    let nope = t.0.join("nope");
    assert_eq!(
        format!("{:#}", journal_files(&nope).unwrap_err()),
        format!("journal directory {} does not exist", nope.display())
    );
    assert_eq!(
        format!(
            "{:#}",
            inputs(std::slice::from_ref(&nope), &[]).unwrap_err()
        ),
        format!("journal directory {} does not exist", nope.display())
    );
    let f = t.file("plain.jsonl", b"");
    assert_eq!(
        format!("{:#}", journal_files(&f).unwrap_err()),
        format!(
            "{} is not a directory (a journal is a directory)",
            f.display()
        )
    );
    let empty = t.0.join("empty");
    fs::create_dir(&empty).unwrap();
    assert_eq!(
        format!("{:#}", journal_files(&empty).unwrap_err()),
        format!(
            "journal directory {} holds no journal files (tracer-*.jsonl)",
            empty.display()
        )
    );
    let e = format!(
        "{:#}",
        inputs(&[], std::slice::from_ref(&nope)).unwrap_err()
    );
    assert!(
        e.starts_with(&format!("cannot read {}: ", nope.display())) && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn inputs_mix_directories_files_and_stdin_in_order() {
    let t = TempDir::new("inputs");
    let a = t.file("a.jsonl", b"");
    let dir = fixtures().join("lab-recovered.journal");
    let got = inputs(&[], &[a.clone(), dir.clone(), PathBuf::from("-")]).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], a);
    assert!(got[1].starts_with(&dir) && got[2].starts_with(&dir));
    assert_eq!(got[3], PathBuf::from("-"));
}

#[test]
fn bad_lines_are_problems_with_file_and_line_and_reading_goes_on() {
    let t = TempDir::new("bad-lines");
    let good = INCIDENT.lines().nth(1).unwrap();
    let mut text = String::new();
    text.push_str(good); // 1
    text.push_str("\n\nhello, not json\n"); // 2 blank, 3
    text.push_str(&good[..good.len() / 2]); // 4: cut, then a newline
    text.push('\n');
    text.push_str("[1,2]\n"); // 5
    text.push_str("{\"kind\":\"rule_del\"}\n"); // 6
    text.push_str("{\"ts\":\"yesterday\",\"kind\":\"rule_del\"}\n"); // 7
    text.push_str("{\"ts\":\"2026-04-10T06:52:46Z\"}\n"); // 8
    text.push_str(&good.replace("\"rule\":", "\"rules\":")); // 9
    text.push_str("\r\n");
    text.push_str(good); // 10
    text.push('\n');
    text.push_str(&good[..40]); // 11: the file ends mid-event
    let f = t.file("bad.jsonl", text.as_bytes());
    let (entries, problems) = read(vec![f.clone()]);
    assert_eq!(
        entries.iter().map(|e| e.at.line).collect::<Vec<_>>(),
        [1, 10]
    );
    let at = |n: usize| format!("{}:{n}: ", f.display());
    let want = [
        (3, "not JSON: expected value at line 1 column 1"),
        (4, "truncated line: EOF while parsing"),
        (5, "not a JSON object"),
        (6, "no `ts`"),
        (7, "`ts` \"yesterday\" is not an RFC 3339 time"),
        (8, "no `kind`"),
        (9, "rule_del: no `rule` object"),
        (
            11,
            "truncated last line (the file ends without a newline, in the middle of an event)",
        ),
    ];
    assert_eq!(problems.len(), want.len(), "{problems:#?}");
    for (p, (n, msg)) in problems.iter().zip(want) {
        assert!(p.starts_with(&format!("{}{msg}", at(n))), "{p}");
    }
}

#[test]
fn unknown_fields_and_kinds_are_not_problems() {
    let good = INCIDENT.lines().nth(1).unwrap();
    let extra = good
        .replacen('{', "{\"future\":{\"x\":[1]},", 1)
        .replace("\"comm\":", "\"container\":\"c1\",\"comm\":")
        .replace("\"priority\":", "\"l3mdev\":true,\"priority\":");
    let e = line(&extra).unwrap().unwrap();
    let Data::Change(Op::Del, c) = e.data else {
        panic!()
    };
    assert_eq!(c.rule.unwrap().priority, Some(5210));

    let e = line(r#"{"ts":"2026-04-10T06:52:46Z","kind":"mystery","source":"tracer","n":1}"#)
        .unwrap()
        .unwrap();
    assert_eq!(e.kind, "mystery");
    assert!(matches!(&e.data, Data::Other(v) if v["n"] == 1));
    // Known kinds that a report does not use are kept as written too.
    let e = line(r#"{"ts":"2026-04-10T06:52:46Z","kind":"guard_action","command":"x"}"#)
        .unwrap()
        .unwrap();
    assert!(matches!(e.data, Data::Other(_)));
}

#[test]
fn snapshots_and_journal_health_read_typed() {
    let s = line(r#"{"ts":"2026-11-24T15:40:00.100021Z","kind":"snapshot","source":"netlink","netns":{"inode":4026532177,"name":"router"},"route":{"family":"inet","table":52,"table_name":null,"type":"throw","dst":"192.168.1.0/24","gateway":null,"dev":null,"ifindex":null,"metric":null,"protocol":"boot","scope":"global"}}"#)
        .unwrap()
        .unwrap();
    let Data::Snapshot(st) = s.data else { panic!() };
    assert_eq!(st.route.unwrap().dst.as_deref(), Some("192.168.1.0/24"));
    assert_eq!(st.netns.name.as_deref(), Some("router"));
    let e = line(r#"{"ts":"2026-11-24T15:40:00.100400Z","kind":"snapshot_end","source":"netlink","netns":{"inode":4026532177,"name":"router"},"rules":13,"routes":9}"#)
        .unwrap()
        .unwrap();
    assert!(matches!(
        e.data,
        Data::SnapshotEnd(SnapshotEnd {
            rules: 13,
            routes: 9,
            ..
        })
    ));
    let p =
        line(r#"{"ts":"2026-11-24T15:40:00Z","kind":"snapshot","netns":{"inode":1,"name":null}}"#)
            .unwrap_err();
    assert_eq!(
        p.to_string(),
        "t.jsonl:7: snapshot: neither a `rule` nor a `route` object"
    );
    let j = line(r#"{"ts":"2026-11-24T15:53:02.000190Z","kind":"journal_resumed","source":"tracer","path":"/j/tracer-x.jsonl","error":null,"dropped":12}"#)
        .unwrap()
        .unwrap();
    assert!(matches!(
        j.data,
        Data::Journal(JournalHealth { dropped: 12, .. })
    ));
}

#[test]
fn wrong_types_name_the_kind_and_the_field() {
    let good = INCIDENT.lines().nth(1).unwrap();
    let p = line(&good.replace("\"priority\":5210", "\"priority\":\"high\"")).unwrap_err();
    assert!(
        p.message
            .starts_with("rule_del: invalid type: string \"high\", expected u32"),
        "{p}"
    );
    let p = line(r#"{"ts":"2026-04-10T06:52:46Z","kind":"lost"}"#).unwrap_err();
    assert_eq!(p.message, "lost: missing field `count`");
    let p = line(r#"{"ts":5,"kind":"lost"}"#).unwrap_err();
    assert_eq!(p.message, "`ts` is not a string");
    let p = line(r#"{"ts":"2026-04-10T06:52:46Z","kind":null}"#).unwrap_err();
    assert_eq!(p.message, "`kind` is not a string");
}

#[test]
fn invalid_utf8_and_overlong_lines_are_skipped() {
    let t = TempDir::new("bytes");
    let good = INCIDENT.lines().nth(1).unwrap();
    let mut bytes =
        b"{\"ts\":\"2026-04-10T06:52:46Z\",\"kind\":\"x\",\"s\":\"\xff\xfe\"}\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
    bytes.push(b'\n');
    bytes.extend(good.as_bytes());
    bytes.push(b'\n');
    let f = t.file("bytes.jsonl", &bytes);
    let (entries, problems) = read(vec![f.clone()]);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].at.line, 3);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with(&format!("{}:1: not JSON: invalid unicode", f.display())));
    assert_eq!(
        problems[1],
        format!("{}:2: line longer than {MAX_LINE} bytes", f.display())
    );
}

#[test]
fn a_file_that_vanished_is_a_problem_not_an_error() {
    let t = TempDir::new("vanished");
    let gone = t.0.join("tracer-20260410T065246.000000Z.jsonl");
    let f = t.file(
        "after.jsonl",
        format!("{}\n", INCIDENT.lines().next().unwrap()).as_bytes(),
    );
    let (entries, problems) = read(vec![gone.clone(), f]);
    assert_eq!(entries.len(), 1);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with(&format!("{}: cannot read: ", gone.display())),
        "{problems:?}"
    );
}

#[test]
fn nexthop_events_read_as_changes_of_their_object() {
    let base = r#""ts":"2026-04-10T07:00:10Z","source":"tracepoint","process":null,"netns":{"inode":7,"name":null},"result":"ok","cause":null,"nl_seq":1"#;
    let nh = r#""nexthop":{"id":10,"family":"inet","gateway":"10.9.0.2","dev":"v0","ifindex":2,"blackhole":false,"fdb":false,"protocol":"static","flags":[],"group":[],"group_type":null,"resilient":null}"#;
    for (kind, op) in [
        ("nexthop_add", Op::Add),
        ("nexthop_replace", Op::Add),
        ("nexthop_del", Op::Del),
    ] {
        let e = line(&format!(r#"{{"kind":"{kind}",{base},{nh}}}"#))
            .unwrap()
            .unwrap();
        let Data::Change(got, c) = &e.data else {
            panic!("{kind}: {:?}", e.data)
        };
        assert_eq!(*got, op, "{kind}");
        assert_eq!(c.nexthop.as_ref().map(|n| n.id), Some(10));
        assert!(c.route.is_none() && c.rule.is_none());
    }
    // A deletion names only the id; a route that went with it, its cause.
    let e = line(&format!(
        r#"{{"kind":"nexthop_del",{base},"nexthop":{{"id":10,"family":null,"gateway":null,"dev":null,"ifindex":null,"protocol":null,"group_type":null}}}}"#
    ))
    .unwrap()
    .unwrap();
    assert!(matches!(e.data, Data::Change(Op::Del, _)));
    let e = line(&format!(
        r#"{{"kind":"route_del",{},"cause_nhid":10,"route":{{"family":"inet","table":100,"table_name":null,"type":"unicast","dst":"198.51.100.0/24","gateway":"10.9.0.2","dev":"v0","ifindex":2,"metric":null,"protocol":"static","scope":"global","nhid":10}}}}"#,
        base.replace(r#""cause":null"#, r#""cause":"nexthop_del""#)
    ))
    .unwrap()
    .unwrap();
    let Data::Change(Op::Del, c) = &e.data else {
        panic!("{:?}", e.data)
    };
    assert_eq!(c.cause, Some(crate::event::Cause::NexthopDel));
    assert_eq!(c.cause_nhid, Some(10));
    assert_eq!(c.route.as_ref().and_then(|r| r.nhid), Some(10));
    let p = line(&format!(r#"{{"kind":"nexthop_del",{base}}}"#)).unwrap_err();
    assert_eq!(p.message, "nexthop_del: no `nexthop` object");
}
