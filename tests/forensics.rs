//! The incident lab recorded by `tracer record`, then asked about after the
//! fact, asserted line by line: `tracer report` tells the episode of rule
//! removals, the restore, the still-missing throw route and the loop;
//! `tracer explain 192.168.1.90 --iif tailscale0` gives, in one screen, the
//! lookup (rule 5270, table 52, `default dev tailscale0`) and the history
//! that explains it (`throw 192.168.1.0/24` removed by systemd-networkd and
//! never restored).
mod common;

use std::{process::Command, time::Duration};

use common::{
    Tracer,
    lab::{BROKEN_ID, LAN_HOST, Lab},
};

use common::TempDir as Dir;

/// `tracer ARGS`, which must succeed; its stdout.
fn tracer(args: &[&str]) -> String {
    let out = Command::new(common::tracer_bin())
        .args(args)
        .output()
        .expect("run tracer");
    assert!(
        out.status.success(),
        "tracer {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Who the lab's flush is: `systemd-network` (the comm of a process run as
/// `systemd-networkd`), with or without a unit in front.
fn by_networkd(line: &str) -> bool {
    line.contains("by systemd-network (pid ") || line.contains(", systemd-network)")
}

/// Record the broken lab: the flush, the partial restore, the loop.
fn recorded_incident(lab: &Lab, dir: &Dir) {
    let t = Tracer::start_cmd(
        "record",
        &[
            "--journal",
            dir.s(),
            "--netns",
            &lab.router,
            "--iface",
            &lab.iface("tailscale0"),
        ],
    );
    lab.break_it();
    lab.ping(&BROKEN_ID.to_string(), 3).assert_looped(3);
    t.wait_for("the loop", Duration::from_secs(10), |e| e["kind"] == "loop");
    let shown = t.stop();
    // `lost` may appear when another process floods the syscall tracepoints
    // meanwhile (they see every netlink request on the machine); it is not
    // what this test is about.
    let kinds: Vec<&str> = shown
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| *k != "lost")
        .collect();
    assert_eq!(
        kinds,
        ["ready", "loop", "loop_end"],
        "record shows only what needs attention"
    );
}

#[test]
fn a_recorded_incident_is_reported_and_explained() {
    let lab = Lab::up();
    let dir = Dir::new("forensics", "incident");
    recorded_incident(&lab, &dir);
    report_tells_the_story(&lab, &dir);
    explain_names_the_rule_the_table_the_route_and_who_removed_it(&lab, &dir);
}

/// Line `i` of `text` must satisfy `ok`.
fn line_is(lines: &[&str], i: usize, text: &str, ok: impl Fn(&str) -> bool) {
    let l = lines
        .get(i)
        .unwrap_or_else(|| panic!("no line {} in:\n{text}", i + 1));
    assert!(ok(l), "line {} is unexpected: {l:?}\nin:\n{text}", i + 1);
}

fn report_tells_the_story(lab: &Lab, dir: &Dir) {
    let text = tracer(&["report", "--journal", dir.s()]);
    let l: Vec<&str> = text.lines().collect();
    let r = lab.router.as_str();
    line_is(&l, 0, &text, |s| {
        s.starts_with("Report of ") && s.contains(" events from ")
    });
    line_is(&l, 1, &text, |s| s == format!("Namespace: {r}"));
    line_is(&l, 2, &text, |s| s.starts_with("Times are "));
    line_is(&l, 3, &text, str::is_empty);
    line_is(&l, 4, &text, |s| s.starts_with("-- ") && s.ends_with(" --"));
    line_is(&l, 5, &text, |s| {
        s.contains("  tracer started (pid ") && s.ends_with(&format!("watching netns {r}"))
    });
    line_is(&l, 6, &text, |s| {
        s.contains(&format!("  snapshot of netns {r}: ")) && s.contains(" rules and ")
    });
    // The flush: one episode.
    line_is(&l, 7, &text, |s| {
        s.contains("systemd-network")
            && s.ends_with(
                "removed 4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24 table 52)",
            )
    });
    // What came back, and what did not.
    line_is(&l, 8, &text, |s| {
        s.trim_start().starts_with("restored at ")
            && s.contains("by tailscaled (pid ")
            && s.ends_with(": 4 rules (5210, 5230, 5250, 5270)")
    });
    line_is(&l, 9, &text, |s| {
        s.trim() == "still missing: inet throw 192.168.1.0/24 table 52 proto boot"
    });
    // The restore: its own episode.
    line_is(&l, 10, &text, |s| {
        s.contains("  tailscaled (pid ") && s.ends_with(" added 4 rules (5210, 5230, 5250, 5270)")
    });
    line_is(&l, 11, &text, |s| {
        s.trim_start().starts_with("puts back what ")
            && s.contains("systemd-network")
            && s.ends_with(": 4 rules (5210, 5230, 5250, 5270)")
    });
    // The loop, tied to the missing route.
    line_is(&l, 12, &text, |s| {
        s.ends_with(
            "  LOOP on tailscale0: 100.119.140.15 > 192.168.1.90 icmp comes back out of tailscale0 from 100.98.98.126 (rule 5270 -> table 52 -> default dev tailscale0)",
        )
    });
    line_is(&l, 13, &text, |s| {
        s.trim_start()
            .starts_with("suspect: throw 192.168.1.0/24 table 52 removed at ")
            && s.contains("systemd-network")
            && s.ends_with(", still missing")
    });
    line_is(&l, 14, &text, |s| {
        s.trim_start().starts_with("3 packets looped, until ")
    });
    line_is(&l, 15, &text, str::is_empty);
    line_is(&l, 16, &text, |s| {
        s.starts_with("Still missing at the end (")
    });
    line_is(&l, 17, &text, |s| {
        s.starts_with("  inet throw 192.168.1.0/24 table 52 proto boot, removed at ")
            && s.contains("systemd-network")
    });
    assert_eq!(l.len(), 18, "{text}");
}

fn explain_names_the_rule_the_table_the_route_and_who_removed_it(lab: &Lab, dir: &Dir) {
    let text = tracer(&[
        "explain",
        LAN_HOST,
        "--iif",
        "tailscale0",
        "--netns",
        &lab.router,
        "--journal",
        dir.s(),
    ]);
    let lines: Vec<&str> = text.lines().collect();
    let want_head = [
        format!(
            "How 192.168.1.90 is routed now in netns {}, for a packet from 100.119.140.15 (assumed: the host route 100.119.140.15 through tailscale0; give --from) arriving on tailscale0:",
            lab.router
        ),
        "  rule 0      lookup 255(local)                            no route here, next rule".into(),
        "  rule 5210   fwmark 0x80000/0xff0000 lookup 254(main)     skipped: mark 0x0 does not match fwmark 0x80000/0xff0000".into(),
        "  rule 5230   fwmark 0x80000/0xff0000 lookup 253(default)  skipped: mark 0x0 does not match fwmark 0x80000/0xff0000".into(),
        "  rule 5250   fwmark 0x80000/0xff0000 unreachable          skipped: mark 0x0 does not match fwmark 0x80000/0xff0000".into(),
        "  rule 5270   lookup 52                                    MATCHED".into(),
        "  table 52: default dev tailscale0".into(),
        "  -> out of tailscale0, the interface it came in on: a forwarding loop".into(),
        String::new(),
    ];
    assert!(lines.len() > want_head.len() + 5, "{text}");
    for (i, want) in want_head.iter().enumerate() {
        assert_eq!(lines[i], want, "line {} of:\n{text}", i + 1);
    }
    let mut rest = lines[want_head.len()..].iter();
    let heading = rest.next().unwrap();
    assert!(
        heading.starts_with(&format!(
            "Routes in table 52 covering 192.168.1.90 (journal {}, ",
            dir.s()
        )),
        "{text}"
    );
    // Most specific first: the missing throw route, then the default.
    let throw = rest.next().unwrap();
    assert!(
        throw.starts_with("  throw 192.168.1.0/24             MISSING  present "),
        "{text}"
    );
    assert!(throw.contains("; removed ") && by_networkd(throw), "{text}");
    let default = rest.next().unwrap();
    assert!(
        default.starts_with("  default dev tailscale0           present  present "),
        "{text}"
    );
    assert!(!default.contains("removed"), "{text}");
    assert_eq!(*rest.next().unwrap(), "Rules for table 52:");
    let rule = rest.next().unwrap();
    assert!(
        rule.starts_with("  rule 5270 lookup 52              present  present "),
        "{text}"
    );
    // Removed by the flush, put back by tailscaled.
    assert!(rule.contains("; removed ") && by_networkd(rule), "{text}");
    assert!(
        rule.contains("; added ") && rule.contains("tailscaled"),
        "{text}"
    );
    assert_eq!(*rest.next().unwrap(), "");
    let answer = rest.next().unwrap();
    assert!(
        answer.starts_with("Answer: `throw 192.168.1.0/24` existed in table 52 until "),
        "{text}"
    );
    assert!(by_networkd(answer), "{text}");
    assert!(
        answer.ends_with(
            "; it is still missing, so 192.168.1.90 now matches `default dev tailscale0`."
        ),
        "{text}"
    );
    assert_eq!(rest.next(), None, "{text}");

    // The same as JSON, field by field.
    let json: serde_json::Value = serde_json::from_str(&tracer(&[
        "explain",
        LAN_HOST,
        "--iif",
        "tailscale0",
        "--netns",
        &lab.router,
        "--journal",
        dir.s(),
        "--json",
    ]))
    .unwrap();
    let l = &json["lookup"];
    assert_eq!(l["route"]["table"], 52);
    assert_eq!(l["route"]["dst"], "0.0.0.0/0");
    assert_eq!(l["route"]["dev"], "tailscale0");
    assert_eq!(l["query"]["src"], "100.119.140.15");
    assert_eq!(l["query"]["src_assumed"], true);
    let decided = l["rules"].as_array().unwrap().last().unwrap();
    assert_eq!(decided["rule"]["priority"], 5270);
    assert_eq!(decided["verdict"], "matched");
    let throw = &json["history"]["routes"][0];
    assert_eq!(throw["route"], "throw 192.168.1.0/24");
    assert_eq!(throw["present_now"], false);
    let removed = throw["moments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["what"] == "removed")
        .unwrap();
    assert_eq!(removed["process"]["comm"], "systemd-network");
    assert!(
        json["answer"]
            .as_str()
            .unwrap()
            .starts_with("`throw 192.168.1.0/24`")
    );
}

#[test]
fn explain_without_a_journal_still_shows_the_lookup() {
    let lab = Lab::up();
    let missing = Dir::new("forensics", "missing");
    // An explicitly named journal that does not exist is an error...
    let out = Command::new(common::tracer_bin())
        .args([
            "explain",
            LAN_HOST,
            "--netns",
            &lab.router,
            "--journal",
            missing.s(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        format!(
            "tracer: --journal {}: no such directory or file",
            missing.s()
        )
    );
    // ... and a bad interface too, in one line, once the journal could not
    // answer instead either.
    let out = Command::new(common::tracer_bin())
        .args([
            "explain",
            LAN_HOST,
            "--iif",
            "nosuch0",
            "--netns",
            &lab.router,
            "--journal",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tracer/tests/fixtures/lab-recorded.journal"
            ),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap().trim(),
        format!(
            "tracer: --iif nosuch0: no such interface in {}; the journal cannot answer either: netns {} is not in the journal (it holds: rep-300-r)",
            lab.router, lab.router
        )
    );
}
