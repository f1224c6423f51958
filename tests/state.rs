//! `tracer state --at/--diff` and `tracer explain --at` on the recording of
//! the incident lab (tracer/tests/fixtures/lab-recorded.journal, made by
//! the real `tracer record`), whose namespace no longer exists: the state
//! before the flush and after it, line by line, as an unprivileged user
//! when run as root; the live `explain` falling back to the journal; and
//! bad input (a moment before the journal, in the future, an unknown
//! namespace, a journal with a gap), each a one-line message or an answer
//! that names what it could not know.
mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// Before the flush (22:55:04.988): the snapshot of 22:55:03.8 holds.
const BEFORE: &str = "2026-11-24 22:55:04 UTC";
/// After the partial restore (22:55:05.518) and during the loop.
const AFTER: &str = "2026-11-24 22:55:06 UTC";

/// A copy of the recorded journal anyone may read, removed on drop.
struct Journal(PathBuf);

impl Journal {
    fn new(tag: &str, edit: impl Fn(&str) -> String) -> Journal {
        let dir =
            std::env::temp_dir().join(format!("tracer-it-state-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tracer/tests/fixtures/lab-recorded.journal");
        for f in std::fs::read_dir(src).unwrap() {
            let f = f.unwrap().path();
            let text = std::fs::read_to_string(&f).unwrap();
            std::fs::write(dir.join(f.file_name().unwrap()), edit(&text)).unwrap();
        }
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&dir)
            .status();
        Journal(dir)
    }
    fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `tracer ARGS` as nobody (when root: no privilege is needed).
fn tracer(args: &[&str]) -> Output {
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::tracer_bin());
        c
    } else {
        Command::new(common::tracer_bin())
    };
    c.args(args).output().expect("run tracer")
}

/// Exit 0, nothing on stderr; stdout.
fn ok(args: &[&str]) -> String {
    let out = tracer(args);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "tracer {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Exit 1 with one line on stderr, which is returned.
fn fails(args: &[&str]) -> String {
    let out = tracer(args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "tracer {args:?}: {err}");
    assert!(out.stdout.is_empty(), "tracer {args:?} printed something");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.trim_end().to_string()
}

fn assert_lines(text: &str, want: &[&str]) {
    let got: Vec<&str> = text.lines().collect();
    for (i, w) in want.iter().enumerate() {
        assert_eq!(got.get(i), Some(w), "line {} of:\n{text}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "{text}");
}

#[test]
fn state_at_a_moment_is_the_snapshot_and_the_changes_before_it() {
    let j = Journal::new("at", str::to_string);
    let text = ok(&[
        "state",
        "--journal",
        j.s(),
        "--utc",
        "--at",
        BEFORE,
        "--table",
        "52",
    ]);
    assert_lines(
        &text,
        &[
            "State of netns rep-300-r at 2026-11-24 22:55:04.000000 UTC (the snapshot of 2026-11-24 22:55:03.835911 UTC, then 0 changes):",
            "",
            "ip -4 rule show",
            "5270:\tfrom all lookup 52",
            "",
            "ip -4 route show table 52",
            "default dev tailscale0 table 52 scope link",
            "throw 10.10.10.0/24 table 52",
            "100.119.140.15 dev tailscale0 table 52 scope link",
            "throw 192.168.1.0/24 table 52",
            "",
            "ip -6 rule show",
            "",
            "ip -6 route show table 52",
        ],
    );
    let text = ok(&["state", "--journal", j.s(), "--utc", "--at", AFTER]);
    let head: Vec<&str> = text.lines().take(24).collect();
    assert_lines(
        &head.join("\n"),
        &[
            "State of netns rep-300-r at 2026-11-24 22:55:06.000000 UTC (the snapshot of 2026-11-24 22:55:03.835911 UTC, then 9 changes):",
            "",
            "ip -4 rule show",
            "0:\tfrom all lookup local",
            "5210:\tfrom all fwmark 0x80000/0xff0000 lookup main",
            "5230:\tfrom all fwmark 0x80000/0xff0000 lookup default",
            "5250:\tfrom all fwmark 0x80000/0xff0000 unreachable",
            "5270:\tfrom all lookup 52",
            "32766:\tfrom all lookup main",
            "32767:\tfrom all lookup default",
            "",
            "ip -4 route show table all",
            "default dev tailscale0 table 52 scope link",
            "throw 10.10.10.0/24 table 52",
            "100.119.140.15 dev tailscale0 table 52 scope link",
            "10.10.10.0/24 dev incusbr0 proto kernel scope link",
            "192.168.1.0/24 dev enp1s0 proto kernel scope link",
            "local 10.10.10.1 dev incusbr0 table local proto kernel scope host",
            "broadcast 10.10.10.255 dev incusbr0 table local proto kernel scope link",
            "local 100.98.98.126 dev tailscale0 table local proto kernel scope host",
            "local 127.0.0.0/8 dev lo table local proto kernel scope host",
            "local 127.0.0.1 dev lo table local proto kernel scope host",
            "broadcast 127.255.255.255 dev lo table local proto kernel scope link",
            "local 192.168.1.1 dev enp1s0 table local proto kernel scope host",
        ],
    );
}

#[test]
fn state_diff_names_who_changed_each() {
    let j = Journal::new("diff", str::to_string);
    let text = ok(&[
        "state",
        "--journal",
        j.s(),
        "--utc",
        "--at",
        BEFORE,
        "--diff",
        AFTER,
    ]);
    assert_lines(
        &text,
        &[
            "Changes in netns rep-300-r from 2026-11-24 22:55:04.000000 UTC to 2026-11-24 22:55:06.000000 UTC:",
            "- throw 192.168.1.0/24 table 52",
            "      removed 2026-11-24 22:55:04.988908 UTC by systemd-network (pid 451)",
            "Changed and back again:",
            "= 5210:\tfrom all fwmark 0x80000/0xff0000 lookup main",
            "      removed 2026-11-24 22:55:04.988383 UTC by systemd-network (pid 451)",
            "      added 2026-11-24 22:55:05.518043 UTC by tailscaled (pid 484)",
            "= 5230:\tfrom all fwmark 0x80000/0xff0000 lookup default",
            "      removed 2026-11-24 22:55:04.988585 UTC by systemd-network (pid 451)",
            "      added 2026-11-24 22:55:05.518107 UTC by tailscaled (pid 484)",
            "= 5250:\tfrom all fwmark 0x80000/0xff0000 unreachable",
            "      removed 2026-11-24 22:55:04.988713 UTC by systemd-network (pid 451)",
            "      added 2026-11-24 22:55:05.518127 UTC by tailscaled (pid 484)",
            "= 5270:\tfrom all lookup 52",
            "      removed 2026-11-24 22:55:04.988807 UTC by systemd-network (pid 451)",
            "      added 2026-11-24 22:55:05.518146 UTC by tailscaled (pid 484)",
        ],
    );
    // Mid-flush: the rules are gone, not yet back.
    let text = ok(&[
        "state",
        "--journal",
        j.s(),
        "--utc",
        "--at",
        BEFORE,
        "--diff",
        "2026-11-24 22:55:05 UTC",
        "--table",
        "52",
    ]);
    assert_lines(
        &text,
        &[
            "Changes in netns rep-300-r from 2026-11-24 22:55:04.000000 UTC to 2026-11-24 22:55:05.000000 UTC:",
            "- 5270:\tfrom all lookup 52",
            "      removed 2026-11-24 22:55:04.988807 UTC by systemd-network (pid 451)",
            "- throw 192.168.1.0/24 table 52",
            "      removed 2026-11-24 22:55:04.988908 UTC by systemd-network (pid 451)",
        ],
    );
}

const LOOKUP: [&str; 5] = [
    "  rule 0      lookup 255(local)                            no route here, next rule",
    "  rule 5210   fwmark 0x80000/0xff0000 lookup 254(main)     skipped: mark 0x0 does not match fwmark 0x80000/0xff0000",
    "  rule 5230   fwmark 0x80000/0xff0000 lookup 253(default)  skipped: mark 0x0 does not match fwmark 0x80000/0xff0000",
    "  rule 5250   fwmark 0x80000/0xff0000 unreachable          skipped: mark 0x0 does not match fwmark 0x80000/0xff0000",
    "",
];

#[test]
fn explain_at_before_and_after_the_flush_from_the_journal_alone() {
    let j = Journal::new("explain", str::to_string);
    let ask = |at: &str| {
        ok(&[
            "explain",
            "192.168.1.90",
            "--iif",
            "tailscale0",
            "--netns",
            "rep-300-r",
            "--journal",
            j.s(),
            "--at",
            at,
        ])
    };
    let text = ask(BEFORE);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(
        l[0],
        "State rebuilt from the journal: the snapshot of 2026-11-24 22:55:03 UTC, then the changes recorded after it."
    );
    assert_eq!(
        l[1],
        "How 192.168.1.90 was routed at 2026-11-24 22:55:04 UTC in netns rep-300-r, for a packet from 100.119.140.15 (assumed: the host route 100.119.140.15 through tailscale0; give --from) arriving on tailscale0:"
    );
    assert_eq!(l[2..6], LOOKUP[..4]);
    assert_eq!(
        l[6],
        "  rule 5270   lookup 52                                    no route here (throw 192.168.1.0/24: back to the rules), next rule"
    );
    assert_eq!(
        l[7],
        "  rule 32766  lookup 254(main)                             MATCHED"
    );
    assert_eq!(l[8], "  table 254 (main): 192.168.1.0/24 dev enp1s0");
    assert_eq!(l[9], "  -> out of enp1s0");
    assert!(!text.contains("loop") && !text.contains("Answer"), "{text}");

    let text = ask(AFTER);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(l[2..6], LOOKUP[..4]);
    assert_eq!(
        l[6],
        "  rule 5270   lookup 52                                    MATCHED"
    );
    assert_eq!(l[7], "  table 52: default dev tailscale0");
    assert_eq!(
        l[8],
        "  -> out of tailscale0, the interface it came in on: a forwarding loop"
    );
    assert!(text.contains("  throw 192.168.1.0/24             MISSING  present 2026-11-24 22:55:03 UTC; removed 2026-11-24 22:55:04 UTC by systemd-network (pid 451)\n"), "{text}");
    assert_eq!(
        l.last().unwrap(),
        &"Answer: `throw 192.168.1.0/24` existed in table 52 until 2026-11-24 22:55:04 UTC and was removed by systemd-network (pid 451); it was still missing at 2026-11-24 22:55:06 UTC, so 192.168.1.90 then matched `default dev tailscale0`."
    );
}

#[test]
fn explain_without_at_answers_from_the_journal_when_the_namespace_is_gone() {
    let j = Journal::new("fallback", str::to_string);
    let text = ok(&[
        "explain",
        "192.168.1.90",
        "--iif",
        "tailscale0",
        "--netns",
        "rep-300-r",
        "--journal",
        j.s(),
    ]);
    let l: Vec<&str> = text.lines().collect();
    assert!(
        l[0].starts_with("The live kernel cannot answer (--netns rep-300-r: ")
            && l[0].ends_with("); answering from the journal instead."),
        "{text}"
    );
    assert!(l[2].starts_with(
        "How 192.168.1.90 is routed in the journal's latest state in netns rep-300-r"
    ));
    assert!(
        text.contains("  table 52: default dev tailscale0\n"),
        "{text}"
    );
    assert!(text.contains("it was still missing at the journal's end, so 192.168.1.90 then matched `default dev tailscale0`"), "{text}");
    // JSON says where the answer came from.
    let json = ok(&[
        "explain",
        "192.168.1.90",
        "--iif",
        "tailscale0",
        "--netns",
        "rep-300-r",
        "--journal",
        j.s(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["lookup"]["answered_by"], "journal");
    assert!(
        v["fallback"]
            .as_str()
            .unwrap()
            .starts_with("--netns rep-300-r: ")
    );
    assert_eq!(v["lookup"]["route"]["table"], 52);
}

#[test]
fn bad_moments_and_namespaces_are_one_line_errors() {
    let j = Journal::new("bad", str::to_string);
    let explain = |extra: &[&str]| {
        let mut a = vec![
            "explain",
            "192.168.1.90",
            "--iif",
            "tailscale0",
            "--journal",
            j.s(),
        ];
        a.extend(extra);
        fails(&a)
    };
    assert_eq!(
        explain(&["--at", "2026-11-24 22:00:00 UTC"]),
        "tracer: --at 2026-11-24 22:00:00.000000 UTC is before the journal's first snapshot (2026-11-24 22:55:03.835911 UTC): the state then is not known"
    );
    assert!(
        explain(&["--at", "2099-01-01"])
            .starts_with("tracer: --at \"2099-01-01\" is in the future (it is now ")
    );
    assert_eq!(
        explain(&["--at", AFTER, "--netns", "nosuch"]),
        "tracer: netns nosuch is not in the journal (it holds: rep-300-r)"
    );
    assert!(explain(&["--at", "garbage"]).starts_with("tracer: --at \"garbage\": "));
    assert_eq!(
        fails(&[
            "explain",
            "192.168.1.90",
            "--iif",
            "nosuch0",
            "--journal",
            j.s(),
            "--at",
            AFTER
        ]),
        "tracer: --iif nosuch0: no address is known to lie behind nosuch0 (no connected subnet or route through it); give --from SRC"
    );
    let state = |extra: &[&str]| {
        let mut a = vec!["state", "--journal", j.s(), "--utc"];
        a.extend(extra);
        fails(&a)
    };
    assert_eq!(
        state(&["--at", "2026-11-24 22:00:00 UTC"]),
        "tracer: --at 2026-11-24 22:00:00.000000 UTC is before the journal's first snapshot (2026-11-24 22:55:03.835911 UTC): the state then is not known"
    );
    assert!(
        state(&["--at", "2099-01-01"]).starts_with("tracer: --at \"2099-01-01\" is in the future")
    );
    assert_eq!(
        state(&["--at", AFTER, "--netns", "nosuch"]),
        "tracer: netns nosuch is not in the journal (it holds: rep-300-r)"
    );
    assert_eq!(
        state(&["--at", AFTER, "--diff", BEFORE]),
        "tracer: --diff 2026-11-24 22:55:04.000000 UTC is before --at 2026-11-24 22:55:06.000000 UTC: give the earlier moment to --at"
    );
    assert_eq!(
        state(&["--at", AFTER, "--table", "nosuch"]),
        "tracer: --table nosuch: not a table id or a name in rt_tables"
    );
}

#[test]
fn a_journal_with_a_gap_says_what_it_could_not_know() {
    // Records lost just before the flush, and the journal ending before the
    // moment asked about.
    let j = Journal::new("gap", |text| {
        text.lines()
            .flat_map(|l| {
                let lost = r#"{"ts":"2026-11-24T22:55:04.500000Z","kind":"lost","source":"tracepoint","count":3,"location":"ring_buffer"}"#;
                if l.contains(r#""ts":"2026-11-24T22:55:04.988383Z""#) {
                    vec![lost.to_string(), l.to_string()]
                } else {
                    vec![l.to_string()]
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    });
    let text = ok(&[
        "state",
        "--journal",
        j.s(),
        "--utc",
        "--at",
        "2026-11-24 23:00:00 UTC",
        "--table",
        "52",
    ]);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(
        l[1],
        "Not known: 3 records lost (ring_buffer) at 2026-11-24T22:55:04.500000Z: changes after it may be missing"
    );
    assert!(
        l[2].starts_with("Not known: the journal's last event is at 2026-11-24 22:55:"),
        "{text}"
    );
    let text = ok(&[
        "explain",
        "192.168.1.90",
        "--iif",
        "tailscale0",
        "--journal",
        j.s(),
        "--at",
        AFTER,
    ]);
    assert!(text.contains("\n  not known: 3 records lost (ring_buffer) at 2026-11-24T22:55:04.500000Z: changes after it may be missing\n"), "{text}");
    // Before the gap, nothing is missing.
    let text = ok(&[
        "explain",
        "192.168.1.90",
        "--iif",
        "tailscale0",
        "--journal",
        j.s(),
        "--at",
        BEFORE,
    ]);
    assert!(!text.contains("not known"), "{text}");
}
