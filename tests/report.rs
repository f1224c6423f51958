//! `tracer report` as a user runs it: the real binary on the recordings of
//! the incident lab (tracer/tests/fixtures, made by the real `tracer watch
//! --json`), and on bad input: missing directories, truncated and non-JSON
//! lines, unknown kinds and fields, impossible windows. Each gives a clear
//! message, never a panic. Needs no root (one test drops to nobody to show
//! it).
mod common;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tracer/tests/fixtures")
        .join(name)
}

fn report(args: &[&str]) -> Output {
    Command::new(common::tracer_bin())
        .arg("report")
        .args(args)
        .output()
        .expect("run tracer report")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit 0, nothing on stderr; the report.
fn ok(out: Output) -> String {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}:\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Exit 1 and one `tracer: ...` line on stderr; the message.
fn fails(out: Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err.strip_prefix("tracer: ")
        .unwrap_or_else(|| panic!("no `tracer: ` prefix: {err}"))
        .trim_end()
        .to_string()
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("tracer-report-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_incident_lab_report() {
    let f = fixture("lab-incident.jsonl");
    let out = ok(report(&["--utc", f.to_str().unwrap()]));
    let want = format!(
        "\
Report of {}: 15 events from 2026-11-24 22:32:38 to 22:32:43
Namespace: rep-2692-r
Times are UTC.

-- 2026-11-24 --
22:32:38  tracer started (pid 2743, version 0.1.0), watching netns rep-2692-r
22:32:39  systemd-network (pid 2772) removed 4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24 table 52)
          restored at 22:32:40 by tailscaled (pid 2783): 4 rules (5210, 5230, 5250, 5270)
          still missing: inet throw 192.168.1.0/24 table 52 proto boot
22:32:40  tailscaled (pid 2783) added 4 rules (5210, 5230, 5250, 5270)
          puts back what systemd-network (pid 2772) removed at 22:32:39: 4 rules (5210, 5230, 5250, 5270)
22:32:41  LOOP on tailscale0: 100.119.140.15 > 192.168.1.90 icmp comes back out of tailscale0 from 100.98.98.126 (rule 5270 -> table 52 -> default dev tailscale0)
          suspect: throw 192.168.1.0/24 table 52 removed at 22:32:39 by systemd-network (pid 2772), still missing
          25 packets looped, until 22:32:43

Still missing at the end (2026-11-24 22:32:43):
  inet throw 192.168.1.0/24 table 52 proto boot, removed at 2026-11-24 22:32:39 by systemd-network (pid 2772)
",
        f.display()
    );
    for (got, want) in out.lines().zip(want.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(out, want);
}

#[test]
fn json_for_machines_and_a_journal_directory() {
    let dir = fixture("lab-recovered.journal");
    let out = ok(report(&["--json", "--journal", dir.to_str().unwrap()]));
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(v["events"], 16);
    assert_eq!(v["missing"], serde_json::json!([]));
    let throw = &v["timeline"][1]["removed"][4];
    assert_eq!(throw["route"]["dst"], "192.168.1.0/24");
    assert_eq!(throw["fate"]["state"], "restored");
    assert_eq!(throw["fate"]["by"]["comm"], "tailscaled");

    let out = ok(report(&[
        "--json",
        "--until",
        "2026-11-24 22:32:57 UTC",
        "--table",
        "52",
        dir.to_str().unwrap(),
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["filters"], serde_json::json!(["table 52"]));
    assert_eq!(v["missing"][0]["route"]["dst"], "192.168.1.0/24");
    assert_eq!(v["missing"][0]["removed_by"]["comm"], "systemd-network");
}

#[test]
fn standard_input_and_filters() {
    let mut child = Command::new(common::tracer_bin())
        .args(["report", "--utc", "--comm", "tailscaled", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::fs::read(fixture("lab-incident.jsonl")).unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = ok(child.wait_with_output().unwrap());
    assert!(out.starts_with("Report of <stdin>: 15 events"), "{out}");
    assert!(out.contains("Only: comm tailscaled\n"), "{out}");
    assert!(
        out.contains("22:32:40  tailscaled (pid 2783) added 4 rules"),
        "{out}"
    );
    assert!(!out.contains("22:32:39  systemd-network"), "{out}");
}

#[test]
fn truncated_non_json_and_unknown_lines_are_reported_and_skipped() {
    let s = Scratch::new("bad-lines");
    let text = std::fs::read_to_string(fixture("lab-incident.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let unknown_fields = lines[1].replacen('{', "{\"added_in_v9\":[1,{\"x\":null}],", 1);
    let journal = [
        lines[0].to_string(),
        unknown_fields,
        "not json at all".to_string(),
        lines[2][..80].to_string(), // cut short by a crash, then a restart
        r#"{"ts":"2026-11-24T22:32:39.9Z","kind":"from_the_future","source":"tracer","what":1}"#
            .to_string(),
        lines[3].to_string(),
        lines[4].to_string(),
        lines[5].to_string(),
        "".to_string(),
        lines[6][..120].to_string(), // the active file, mid-write
    ]
    .join("\n");
    let f = s.0.join("tracer-20261124T223238.564622Z.jsonl");
    std::fs::write(&f, journal).unwrap();
    let out = ok(report(&["--utc", "--journal", s.0.to_str().unwrap()]));
    assert!(
        out.contains(
            "22:32:39  systemd-network (pid 2772) removed 3 rules (5210, 5250, 5270) and 1 route"
        ),
        "{out}"
    );
    assert!(
        out.contains("Not shown: 1 event of other kinds (from_the_future 1).\n"),
        "{out}"
    );
    let skipped = format!(
        "Skipped 3 lines:\n  {f}:3: not JSON: expected ident at line 1 column 2\n  {f}:4: truncated line: EOF while parsing a string at line 1 column 80\n  {f}:10: truncated last line (the file ends without a newline, in the middle of an event): EOF while parsing a string at line 1 column 120\n",
        f = f.display()
    );
    assert!(out.ends_with(&skipped), "{out}");
}

#[test]
fn missing_and_empty_journals_are_one_line_errors() {
    let s = Scratch::new("dirs");
    let nope = s.0.join("nope");
    assert_eq!(
        fails(report(&["--journal", nope.to_str().unwrap()])),
        format!("journal directory {} does not exist", nope.display())
    );
    assert_eq!(
        fails(report(&[s.0.to_str().unwrap()])),
        format!(
            "journal directory {} holds no journal files (tracer-*.jsonl)",
            s.0.display()
        )
    );
    let e = fails(report(&[nope.join("x.jsonl").to_str().unwrap()]));
    assert!(
        e.starts_with("cannot read ") && e.ends_with("No such file or directory (os error 2)"),
        "{e}"
    );
}

#[test]
fn impossible_windows_and_filters_are_one_line_errors() {
    let f = fixture("lab-incident.jsonl");
    let f = f.to_str().unwrap();
    let e = fails(report(&["--since", "tomorrow", f]));
    assert!(
        e.starts_with("--since ") && e.contains(" is in the future (it is now "),
        "{e}"
    );
    let e = fails(report(&["--since", "+2h", f]));
    assert!(e.contains("is in the future"), "{e}");
    let e = fails(report(&[
        "--since",
        "2026-11-24 22:33",
        "--until",
        "2026-11-24 22:32",
        f,
    ]));
    assert!(e.contains("is after --until"), "{e}");
    let e = fails(report(&["--until", "next tuesday", f]));
    assert!(
        e.starts_with("--until \"next tuesday\": not a time journalctl accepts"),
        "{e}"
    );
    let e = fails(report(&["--dst", "192.168.1.0/40", f]));
    assert!(
        e.starts_with("--dst \"192.168.1.0/40\" is not an address"),
        "{e}"
    );
    // Relative times that journalctl takes are accepted.
    for since in [
        "-1h",
        "2h ago",
        "yesterday",
        "today",
        "00:00",
        "2026-11-24 22:32:40",
    ] {
        let out = report(&["--since", since, f]);
        assert!(
            out.status.success(),
            "--since {since}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn no_root_needed() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        ok(report(&[fixture("lab-incident.jsonl").to_str().unwrap()]));
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::tracer_bin())
        .args(["report", "--json"])
        .arg(fixture("lab-incident.jsonl"))
        .output()
        .expect("setpriv (util-linux)");
    let v: Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(v["events"], 15);
}

/// `tracer report ARGS` as nobody (root reads every file, whatever its
/// mode).
fn report_as_nobody(args: &[&str]) -> Output {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return report(args);
    }
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::tracer_bin())
        .arg("report")
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn routes_of_a_deleted_interface_are_gone_with_it_not_missing_nor_restored() {
    let dir = fixture("link-del.journal");
    let out = ok(report(&["--utc", dir.to_str().unwrap()]));
    assert!(
        out.contains("          gone with interface d2 (deleted): 5 routes (10.2.0.0/24 dev d2 table main, broadcast 10.2.0.255/32 dev d2 table local, fe80::/64 dev d2 table main, multicast ff00::/8 dev d2 table local, local 10.2.0.1/32 dev d2 table local)\n"),
        "{out}"
    );
    assert!(
        out.contains("          gone with interface p2 (deleted): 2 routes (fe80::/64 dev p2 table main, multicast ff00::/8 dev p2 table local)\n"),
        "{out}"
    );
    // Named from the journal, not `dev #5`; d3's fe80::/64 restores nothing.
    for wrong in [
        "dev #",
        "still missing",
        "Still missing",
        "restored",
        "puts back",
    ] {
        assert!(!out.contains(wrong), "{wrong:?} in:\n{out}");
    }
    assert!(
        out.contains("Nothing removed in this window is missing at its end"),
        "{out}"
    );
    let v: Value = serde_json::from_str(&ok(report(&["--json", dir.to_str().unwrap()]))).unwrap();
    assert_eq!(v["missing"], serde_json::json!([]));
    let removed: Vec<&Value> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["removed"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(removed.len(), 7);
    for r in removed {
        assert_eq!(r["fate"]["state"], "gone_with_interface", "{r}");
        assert!(
            ["d2", "p2"].contains(&r["route"]["dev"].as_str().unwrap()),
            "{r}"
        );
    }
    let added_d3 = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["added"].as_array().into_iter().flatten())
        .filter(|a| a["route"]["dev"] == "d3");
    for a in added_d3 {
        assert_eq!(a["restores"], Value::Null, "{a}");
    }
}

#[test]
fn an_unknown_table_is_an_error_as_in_watch() {
    let f = fixture("lab-incident.jsonl");
    assert_eq!(
        fails(report(&["--table", "nosuch", f.to_str().unwrap()])),
        "unknown --table \"nosuch\": not a number, a name in rt_tables, or a table the journal names"
    );
    // Numbers, and names this machine or the journal knows, are fine.
    for t in ["52", "main", "local"] {
        ok(report(&["--table", t, f.to_str().unwrap()]));
    }
}

#[test]
fn an_unreadable_file_is_the_same_error_alone_or_in_a_directory() {
    let s = Scratch::new("unreadable");
    let src = fixture("lab-recovered.journal");
    let mut names: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in &names {
        std::fs::copy(src.join(n), s.0.join(n)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&s.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = s.0.join(&names[1]);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let want = format!(
        "cannot read {}: Permission denied (os error 13)",
        locked.display()
    );
    assert_eq!(fails(report_as_nobody(&[locked.to_str().unwrap()])), want);
    assert_eq!(fails(report_as_nobody(&[s.0.to_str().unwrap()])), want);
    assert_eq!(
        fails(report_as_nobody(&["--journal", s.0.to_str().unwrap()])),
        want
    );
    // The readable file alone still reports.
    ok(report_as_nobody(&[s.0.join(&names[0]).to_str().unwrap()]));
}

#[test]
fn format_json_is_json_and_conflicts_with_another_format() {
    let f = fixture("lab-incident.jsonl");
    let f = f.to_str().unwrap();
    assert_eq!(
        ok(report(&["--format", "json", f])),
        ok(report(&["--json", f]))
    );
    assert_eq!(ok(report(&["--format", "text", f])), ok(report(&[f])));
    let out = report(&["--json", "--format", "markdown", f]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("'--json' cannot be used with '--format <FORMAT>'"),
        "{}",
        text(&out.stderr)
    );
}

/// What is not a journal is said in one line, fast, with a non-zero exit:
/// an endless device, a binary, `watch`'s text output (issue 16).
#[test]
fn what_is_not_a_journal_is_one_line_error() {
    let s = Scratch::new("notjournal");
    let start = std::time::Instant::now();
    let e = fails(report(&["/dev/zero"]));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.starts_with("/dev/zero:1: a line longer than ") && e.contains("not a journal"),
        "{e}"
    );
    let bin = s.0.join("binary");
    std::fs::write(
        &bin,
        &std::fs::read(common::tracer_bin()).unwrap()[..200_000],
    )
    .unwrap();
    let e = fails(report(&[bin.to_str().unwrap()]));
    assert!(e.contains("not a journal"), "{e}");
    let watch_text = s.0.join("watch.txt");
    std::fs::write(
        &watch_text,
        "19:10:41.102337 rule_del pref 5270 lookup 52 ok by systemd-network[812]\n\
         19:10:41.102400 route_del throw 192.168.1.0/24 table 52 ok by systemd-network[812]\n",
    )
    .unwrap();
    let e = fails(report(&[watch_text.to_str().unwrap()]));
    assert!(
        e.contains("not a journal: none of its 2 lines is an event") && e.contains("--json"),
        "{e}"
    );
    // A journal with a bad line in it is still a journal.
    let mixed = s.0.join("mixed.jsonl");
    let good = std::fs::read_to_string(fixture("lab-incident.jsonl")).unwrap();
    std::fs::write(&mixed, format!("garbage\n{good}")).unwrap();
    let out = report(&[mixed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A process name the tracer escaped when it read it from the kernel
/// (`e\e[31mx` in the JSON) is written once escaped in text, not twice
/// (`e\\e[31mx`), and a raw escape a hand-edited journal holds is still
/// neutralised (issue 16).
#[test]
fn an_escaped_process_name_is_not_escaped_twice() {
    let s = Scratch::new("escape");
    let good = std::fs::read_to_string(fixture("lab-incident.jsonl")).unwrap();
    let line = good
        .lines()
        .find(|l| l.contains(r#""kind":"route_del""#))
        .unwrap();
    let escaped = line.replace(r#""comm":"systemd-network""#, r#""comm":"e\\e[31mx""#);
    let raw = line
        .replace(r#""comm":"systemd-network""#, r#""comm":"r\u001b[31my""#)
        .replace(r#""pid":2772,"tid":2772"#, r#""pid":2773,"tid":2773"#);
    let f = s.0.join("escape.jsonl");
    std::fs::write(&f, format!("{escaped}\n{raw}\n")).unwrap();
    let out = ok(report(&["--utc", f.to_str().unwrap()]));
    assert!(out.contains(r"e\e[31mx (pid 2772)"), "{out}");
    assert!(!out.contains(r"e\\e[31mx"), "{out}");
    assert!(out.contains(r"r\e[31my (pid 2773)"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out}");
}
