//! `tracer report --format markdown|html` on the lab's recordings
//! (tracer/tests/fixtures): the postmortem draft line by line, the page's
//! structure (self-contained, the SVG's rows), and names from the journal
//! that try to be markup. No root, no browser (tests/report_html.rs renders
//! the page in Chromium).
mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tracer/tests/fixtures")
        .join(name)
}

/// `tracer report ARGS`, which must succeed quietly; its stdout.
fn report(args: &[&str]) -> String {
    let out: Output = Command::new(common::tracer_bin())
        .arg("report")
        .args(args)
        .output()
        .expect("run tracer report");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success() && e.is_empty(),
        "{}:\n{o}{e}",
        out.status
    );
    o
}

#[test]
fn the_markdown_postmortem_of_the_incident_lab() {
    let f = fixture("lab-incident.jsonl");
    let out = report(&["--utc", "--format", "markdown", f.to_str().unwrap()]);
    let want = format!(
        "\
# Routing incident, 2026-11-24 (draft)

**Summary:** throw 192.168.1.0/24 table 52 was removed by systemd-network (pid 2772) at 22:32:39 and is still missing; 1 routing loop on tailscale0 (25 packets looped); 4 rules (5210, 5230, 5250, 5270) restored by tailscaled (pid 2783).

Drafted by `tracer report` from 15 events in {}, 2026-11-24 22:32:38 to 22:32:43.

## Timeline (UTC)

| Time | Event |
|---|---|
| 22:32:38 | tracer started recording (pid 2743), watching netns rep-2692-r |
| 22:32:39 | systemd-network (pid 2772) removed 4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24 table 52) |
| 22:32:40 | tailscaled (pid 2783) restored 4 rules (5210, 5230, 5250, 5270) removed by systemd-network (pid 2772) at 22:32:39 |
| 22:32:41 | Routing loop on tailscale0: 100.119.140.15 > 192.168.1.90 icmp comes back out of tailscale0 from 100.98.98.126 (rule 5270 -> table 52 -> default dev tailscale0) |
| 22:32:43 | Loop on tailscale0 ended: 25 packets looped in 2s |

## Root cause candidates

- inet throw 192.168.1.0/24 table 52 proto boot: removed at 22:32:39 by systemd-network (pid 2772, exe /usr/bin/ip), still missing at the end; explains the loop on tailscale0 (100.119.140.15 > 192.168.1.90, rule 5270 -> table 52 -> default dev tailscale0)

## Impact

- 1 looping flow on 1 interface (tailscale0): 25 packets looped in all.
- tailscale0: 100.119.140.15 > 192.168.1.90 icmp: 25 packets, from 22:32:41 to 22:32:43 (2s)
- Still missing at the end (2026-11-24 22:32:43): 1 route (throw 192.168.1.0/24 table 52).

## What was restored

- 4 rules (5210, 5230, 5250, 5270), removed by systemd-network (pid 2772) at 22:32:39: restored at 22:32:40 by tailscaled (pid 2783)

## Gaps in the record

- No snapshot: what was present before the first change is not known (a tracer record journal starts with one).

",
        f.display()
    );
    for (got, want) in out.lines().zip(want.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(out, want);
}

#[test]
fn markdown_of_a_restored_recording_and_in_local_time() {
    let dir = fixture("lab-recovered.journal");
    let out = report(&["--utc", "--format", "markdown", dir.to_str().unwrap()]);
    // The throw route came back: no candidate is still missing, the
    // loop's suspect is named with its restoration.
    assert!(out.contains("\n## Root cause candidates\n\n- inet throw 192.168.1.0/24 table 52 proto boot: removed by systemd-network (pid "), "{out}");
    assert!(out.contains(", restored at "), "{out}");
    assert!(!out.contains("still missing"), "{out}");
    assert!(out.contains("\n## What was restored\n"), "{out}");
    // The operator's zone: the timeline is headed with its offset.
    let out = Command::new(common::tracer_bin())
        .args(["report", "--format", "markdown"])
        .arg(&dir)
        .env("TZ", "Asia/Tokyo")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("\n## Timeline (UTC+09:00)\n"), "{out}");
    assert!(out.contains("\n| 07:32:"), "{out}");
}

/// The lab recording with its processes renamed to markup.
fn hostile(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixture("lab-incident.jsonl")).unwrap();
    let evil = r#"<img src=x onerror=alert(1)>|*x*_[l](u)`&amp;"#;
    let text = text.replace(
        "\"comm\":\"systemd-network\"",
        &format!("\"comm\":{}", serde_json::to_string(evil).unwrap()),
    );
    let text = text.replace("\"tailscale0\"", "\"<b>ts|0</b>\"");
    let f = dir.join("hostile.jsonl");
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn names_that_are_markup_are_shown_as_written() {
    let dir = std::env::temp_dir().join(format!("tracer-report-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = hostile(&dir);
    let md = report(&["--utc", "--format", "markdown", f.to_str().unwrap()]);
    assert!(
        md.contains(r"| 22:32:39 | \<img src=x onerror=alert(1)>\|\*x\*\_\[l\](u)\`\&amp; (pid 2772) removed 4 rules"),
        "{md}"
    );
    assert!(md.contains(r"Routing loop on \<b>ts\|0\</b>:"), "{md}");
    // Every table row still has exactly two cells.
    for l in md.lines().filter(|l| l.starts_with("| ")) {
        let cells = l.replace(r"\|", "").matches('|').count();
        assert_eq!(cells, 3, "{l}");
    }
    let html = report(&["--utc", "--format", "html", f.to_str().unwrap()]);
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;|*x*_[l](u)`&amp;amp; (pid 2772)"),
        "{html}"
    );
    assert!(html.contains("loop on &lt;b&gt;ts|0&lt;/b&gt;"), "{html}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_html_page_is_self_contained_with_a_row_per_changed_rule_and_route() {
    let dir = fixture("lab-recorded.journal");
    let html = report(&["--utc", "--format", "html", dir.to_str().unwrap()]);
    assert!(
        html.starts_with("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"),
        "{html}"
    );
    assert!(html.ends_with("</html>\n"));
    for banned in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import",
    ] {
        assert!(!html.contains(banned), "{banned} in the page");
    }
    // The only URL is the SVG namespace's name.
    assert_eq!(html.matches("://").count(), 1, "{html}");
    assert!(html.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    // The four rules and the throw route, the throw route first (still
    // missing), each with its bars.
    let rows: Vec<&str> = html.split("<g class=\"row\"").skip(1).collect();
    assert_eq!(rows.len(), 5, "{html}");
    assert!(
        rows[0].contains(">inet throw 192.168.1.0/24 table 52 proto boot</text>"),
        "{}",
        rows[0]
    );
    assert!(rows[0].contains("data-missing=\"true\""));
    for (row, prio) in rows[1..].iter().zip(["5210", "5230", "5250", "5270"]) {
        assert!(row.contains(&format!(">rule inet pref {prio} ")), "{row}");
        assert!(row.contains("data-missing=\"false\""));
        // present, removed by systemd-network, present again
        assert_eq!(row.matches("<rect class=\"bar ").count(), 3, "{row}");
        assert!(
            row.contains("missing 22:55:04 to 22:55:05, removed by systemd-network (pid 451)"),
            "{row}"
        );
    }
    assert_eq!(html.matches("<g class=\"loop\">").count(), 1);
    assert_eq!(html.matches("<g class=\"session\">").count(), 1);
    assert_eq!(html.matches("<g class=\"snapshot\">").count(), 1);
    for section in [
        "Timeline (UTC)",
        "Root cause candidates",
        "Impact",
        "What was restored",
        "The full report",
    ] {
        assert!(html.contains(&format!("<h2>{section}</h2>")), "{section}");
    }
}

/// Two hosts' journals (tracer/tests/fixtures/fleet-a.journal, the
/// incident lab on router-a, and fleet-b.journal, router-b, whose
/// namespace has the same inode) told as one timeline, each line naming
/// its host in the namespace (issue 17); `--host` keeps one host.
#[test]
fn many_hosts_journals_make_one_timeline() {
    let (a, b) = (fixture("fleet-a.journal"), fixture("fleet-b.journal"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = report(&["--utc", "--journal", a, "--journal", b]);
    let want = "\
Report of 2 files: 17 events from 2026-11-24 22:32:38 to 22:32:43
Times are UTC.

-- 2026-11-24 --
22:32:38  tracer started (pid 2743, version 0.1.0), watching netns router-a:rep-2692-r
22:32:38  tracer started (pid 700, version 0.1.0), watching netns router-b:lab-b
22:32:39  systemd-network (pid 2772) removed 4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24 table 52) in netns router-a:rep-2692-r
          restored at 22:32:40 by tailscaled (pid 2783): 4 rules (5210, 5230, 5250, 5270)
          still missing: inet throw 192.168.1.0/24 table 52 proto boot in netns router-a:rep-2692-r
22:32:40  tailscaled (pid 2783) added 4 rules (5210, 5230, 5250, 5270) in netns router-a:rep-2692-r
          puts back what systemd-network (pid 2772) removed at 22:32:39: 4 rules (5210, 5230, 5250, 5270)
22:32:40  ip (pid 701) added 1 route (10.9.0.0/16 via 192.0.2.2 dev eth0 table main) in netns router-b:lab-b
22:32:41  LOOP on tailscale0 in netns router-a:rep-2692-r: 100.119.140.15 > 192.168.1.90 icmp comes back out of tailscale0 from 100.98.98.126 (rule 5270 -> table 52 -> default dev tailscale0)
          suspect: throw 192.168.1.0/24 table 52 removed at 22:32:39 by systemd-network (pid 2772)
          25 packets looped, until 22:32:43

Still missing at the end (2026-11-24 22:32:43):
  inet throw 192.168.1.0/24 table 52 proto boot in netns router-a:rep-2692-r, removed at 2026-11-24 22:32:39 by systemd-network (pid 2772)
";
    for (i, (got, want)) in out.lines().zip(want.lines()).enumerate() {
        assert_eq!(got, want, "line {}", i + 1);
    }
    assert_eq!(out.lines().count(), want.lines().count(), "{out}");

    // One host: its namespace as it named it, nothing of the other.
    let only_b = report(&[
        "--utc",
        "--journal",
        a,
        "--journal",
        b,
        "--host",
        "router-b",
    ]);
    assert!(
        only_b.contains(
            "ip (pid 701) added 1 route (10.9.0.0/16 via 192.0.2.2 dev eth0 table main)\n"
        ),
        "{only_b}"
    );
    assert!(
        !only_b.contains("router-a") && !only_b.contains("tailscale0"),
        "{only_b}"
    );

    // A host the journals do not hold: one line naming those they do.
    let out = Command::new(common::tracer_bin())
        .args(["report", "--journal", a, "--journal", b, "--host", "nosuch"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "tracer: no event of host nosuch in 2 file(s); the hosts there: router-a, router-b"
    );
}
