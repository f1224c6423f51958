//! The request-form test: every rule and route request of the corpus
//! (tests/forms/*.forms: real bytes of iproute2, systemd-networkd, libnl, Go
//! netlink and raw senders) is made in a fresh namespace under the real
//! `tracer watch --json`, and must be reported exactly once, in order, by
//! its process, within 100 ms, with the case's fields. See
//! tests/forms/README.md.
mod common;
#[path = "common/forms.rs"]
mod forms;

use std::{
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::{Netns, Tracer, nlraw_bin};
use forms::{Case, load, mismatches};
use serde_json::Value;

/// How long a request may take to be reported on an idle machine.
const MAX_DELAY: Duration = Duration::from_millis(100);
/// How long to wait for a case's events before going on to the next case.
const WAIT: Duration = Duration::from_secs(1);

fn run_sh(ns: &str, args: &[&str]) -> std::process::Output {
    let script = forms::dir().join("run.sh");
    Command::new("sh")
        .arg(script)
        .args([ns, nlraw_bin().to_str().unwrap(), "ip"])
        .args(args)
        .output()
        .expect("run tests/forms/run.sh")
}

/// What the sender printed: nlraw's `sent SEQ NANOS` and `ack SEQ RESULT`,
/// or run.sh's `exit N` after `ip`.
#[derive(Default)]
struct Sent {
    sends: Vec<(u64, SystemTime)>,
    acks: Vec<(u64, String)>,
    exit: Option<i32>,
    output: String,
}

fn parse_sent(out: &std::process::Output) -> Sent {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut s = Sent {
        output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        ..Sent::default()
    };
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["sent", seq, ns] => s.sends.push((
                seq.parse().unwrap(),
                UNIX_EPOCH + Duration::from_nanos(ns.parse().unwrap()),
            )),
            ["ack", seq, r] => s.acks.push((seq.parse().unwrap(), r.to_string())),
            ["exit", n] => s.exit = n.parse().ok(),
            _ => {}
        }
    }
    s
}

fn changes(t: &Tracer) -> Vec<Value> {
    t.events()
        .into_iter()
        .filter(|e| e["kind"] != "ready")
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// What is wrong with one case's events (empty: it passed).
fn check_case(
    c: &Case,
    comm: &str,
    ns: &str,
    sent: &Sent,
    start: SystemTime,
    got: &[(Value, Option<SystemTime>)],
) -> Vec<String> {
    let mut bad = Vec::new();
    // The sender's own view first: a wrong answer from the kernel means the
    // corpus or its preconditions are wrong, not the tracer.
    if comm == "nlraw" {
        let results: Vec<&str> = sent.acks.iter().map(|a| a.1.as_str()).collect();
        let want: Vec<&str> = c.expects.iter().map(|e| e.result.as_str()).collect();
        if results != want {
            bad.push(format!(
                "CORPUS: the kernel answered {results:?}, the case expects {want:?}: {}",
                sent.output.trim()
            ));
        }
    } else {
        let ok = c.expects.iter().all(|e| e.result == "ok");
        if sent.exit.map(|e| e == 0) != Some(ok) {
            bad.push(format!(
                "CORPUS: ip exited {:?}: {}",
                sent.exit,
                sent.output.trim()
            ));
        }
    }
    if got.len() != c.expects.len() {
        bad.push(format!(
            "{} event(s) reported, {} expected",
            got.len(),
            c.expects.len()
        ));
    }
    for (i, want) in c.expects.iter().enumerate() {
        let Some((e, arrival)) = got.get(i) else {
            bad.push(format!("no event #{} ({})", i + 1, want.kind));
            continue;
        };
        let mut m = mismatches(want, e);
        if e["process"]["comm"] != comm {
            m.push(format!(
                "process.comm {} (want {comm})",
                e["process"]["comm"]
            ));
        }
        if e["netns"]["name"] != ns {
            m.push(format!("netns.name {}", e["netns"]["name"]));
        }
        let sent_at = match sent.sends.get(i) {
            Some((seq, at)) if sent.sends.len() == c.expects.len() => {
                if e["nl_seq"] != *seq {
                    m.push(format!("nl_seq {} (want {seq})", e["nl_seq"]));
                }
                *at
            }
            _ => start,
        };
        match arrival {
            Some(a) => {
                let d = a.duration_since(sent_at).unwrap_or_default();
                if d > MAX_DELAY {
                    m.push(format!("reported {} after its request", ms(d)));
                }
            }
            None => m.push("reported only while the tracer was stopping".into()),
        }
        if !m.is_empty() {
            bad.push(format!("event #{} {}: {}", i + 1, want.kind, m.join("; ")));
        }
    }
    if !bad.is_empty() {
        for (e, _) in got {
            bad.push(format!("  got: {e}"));
        }
    }
    bad
}

/// Run every case of `files` in one fresh namespace, through `ip` itself
/// (`by_ip`) or replayed by nlraw, and fail with every case that failed.
fn pass(files: &[&str], by_ip: bool) {
    let cases: Vec<Case> = load(files)
        .into_iter()
        .filter(|c| !by_ip || c.by_ip())
        .collect();
    assert!(!cases.is_empty(), "no cases in {files:?}");
    let ns = Netns::new(if by_ip { "fip" } else { "frp" });
    let out = run_sh(&ns.name, &["pre"]);
    assert!(
        out.status.success(),
        "run.sh pre failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Tracer::start(&["--netns", &ns.name]);
    let mut windows = Vec::new();
    for c in &cases {
        let first = changes(&t).len();
        let start = SystemTime::now();
        let out = run_sh(&ns.name, &[if by_ip { "ip" } else { "replay" }, &c.name]);
        if !by_ip {
            assert!(
                out.status.success(),
                "{}: replay failed: {}",
                c.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let sent = parse_sent(&out);
        let waited = Instant::now();
        while changes(&t).len() < first + c.expects.len() && waited.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        windows.push((first, start, sent));
    }
    let seen = changes(&t);
    let arrivals: Vec<Option<SystemTime>> = seen.iter().map(|e| t.arrival(|x| x == e)).collect();
    let all: Vec<Value> = t
        .stop()
        .into_iter()
        .filter(|e| e["kind"] != "ready")
        .collect();
    let comm = if by_ip { "ip" } else { "nlraw" };
    let mut failed = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let (first, start, sent) = &windows[k];
        let end = windows.get(k + 1).map(|w| w.0).unwrap_or(all.len());
        let got: Vec<(Value, Option<SystemTime>)> = (*first..end)
            .map(|i| (all[i].clone(), arrivals.get(i).copied().flatten()))
            .collect();
        let bad = check_case(c, comm, &ns.name, sent, *start, &got);
        if bad.is_empty() {
            eprintln!("PASS {}", c.name);
        } else {
            eprintln!("FAIL {}: {}", c.name, bad[0]);
            failed.push(format!(
                "{} ({}, {}.forms):\n    {}",
                c.name,
                c.client,
                c.file,
                bad.join("\n    ")
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} request forms of {files:?} ({}) failed:\n{}",
        failed.len(),
        cases.len(),
        if by_ip {
            "run by ip"
        } else {
            "replayed by nlraw"
        },
        failed.join("\n")
    );
}

#[test]
fn iproute2_forms_run_by_ip() {
    pass(&["iproute2"], true);
}

#[test]
fn iproute2_forms_replayed() {
    pass(&["iproute2"], false);
}

#[test]
fn go_netlink_forms_replayed() {
    pass(&["go"], false);
}

#[test]
fn libnl_forms_replayed() {
    pass(&["libnl"], false);
}

#[test]
fn raw_forms_replayed() {
    pass(&["raw"], false);
}

#[test]
fn systemd_networkd_forms_replayed() {
    pass(&["networkd"], false);
}
