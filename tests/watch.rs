//! `tracer watch` on this machine's kernel (the tracepoint path here), each
//! test in its own network namespace, asserting the JSON field by field.
mod common;

use std::{process::Command, time::Duration};

use common::{Netns, Tracer, doctor, nlraw_bin, run, scenario, scenario_script, tracer_bin};
use serde_json::Value;

/// The mechanism this kernel gives the hooks: fentry and kprobes are
/// absent here (see doctor), so every hook must fall back to tracepoints.
fn expected_source() -> String {
    doctor()["hooks"]["route4_del"]["mechanism"]
        .as_str()
        .expect("mechanism")
        .to_string()
}

fn run_scenario(extra: &[&str]) -> (Netns, Vec<Value>) {
    let ns = Netns::new("scn");
    let mut args = vec!["--netns", ns.name.as_str()];
    args.extend_from_slice(extra);
    let t = Tracer::start(&args);
    run(
        "sh",
        &[
            scenario_script().to_str().unwrap(),
            &ns.name,
            nlraw_bin().to_str().unwrap(),
            "ip",
        ],
    );
    t.wait_for("the link-down removal", Duration::from_secs(10), |e| {
        e["cause"] == "link_down"
    });
    let events = t.stop();
    (ns, events)
}

#[test]
fn scenario_is_attributed_on_this_kernel() {
    let source = expected_source();
    let (ns, events) = run_scenario(&[]);
    scenario::check(&events, &ns.name, &source);
}

#[test]
fn forced_tracepoint_path_is_attributed() {
    let (ns, events) = run_scenario(&["--attach", "tracepoint"]);
    scenario::check(&events, &ns.name, "tracepoint");
}

/// `--btf FILE` (for kernels without /sys/kernel/btf/vmlinux): a copy of
/// this kernel's BTF in a directory of its own serves the offsets and the
/// loader, and the scenario is attributed as with the kernel's own.
#[test]
fn a_btf_file_given_with_btf_serves() {
    let dir = std::env::temp_dir().join(format!("tracer-it-btf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("vmlinux.btf");
    std::fs::copy("/sys/kernel/btf/vmlinux", &copy).unwrap();
    let copy = copy.to_str().unwrap();
    let doctor = run(tracer_bin().to_str().unwrap(), &["doctor", "--btf", copy]);
    assert!(
        doctor.contains(&format!("{copy} parsed (--btf)")),
        "{doctor}"
    );
    let source = expected_source();
    let (ns, events) = run_scenario(&["--btf", copy]);
    let _ = std::fs::remove_dir_all(&dir);
    scenario::check(&events, &ns.name, &source);
}

#[test]
fn filters_keep_only_what_was_asked() {
    let ns = Netns::new("flt");
    let t = Tracer::start(&[
        "--netns", &ns.name, "--only", "removals", "--table", "52", "--family", "inet",
    ]);
    for cmd in [
        "route add blackhole 10.1.0.0/16 table 52",
        "route add blackhole 10.2.0.0/16 table 53",
        "-6 route add blackhole 2001:db8::/64 table 52",
        "-6 route del blackhole 2001:db8::/64 table 52",
        "route del blackhole 10.2.0.0/16 table 53",
        "route del blackhole 10.1.0.0/16 table 52",
    ] {
        ns.ip(cmd);
    }
    t.wait_for("the table 52 removal", Duration::from_secs(10), |e| {
        e["kind"] == "route_del"
    });
    let events = t.stop();
    let changes: Vec<&Value> = events.iter().filter(|e| e["kind"] != "ready").collect();
    assert_eq!(
        changes.len(),
        1,
        "only the IPv4 removal in table 52 passes: {changes:?}"
    );
    assert_eq!(changes[0]["route"]["dst"], "10.1.0.0/16");
    assert_eq!(changes[0]["route"]["type"], "blackhole");
}

fn tracer_fails(args: &[&str]) -> String {
    let out = Command::new(tracer_bin())
        .args(args)
        .output()
        .expect("run tracer");
    assert!(!out.status.success(), "tracer {args:?} should fail");
    assert!(
        out.stdout.is_empty(),
        "nothing half-written on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one-line error expected: {err}");
    assert!(err.starts_with("tracer: "), "{err}");
    err
}

#[test]
fn impossible_or_bad_input_fails_in_one_line() {
    let doctor = doctor();
    if doctor["features"]["fentry"]["available"] == false {
        let err = tracer_fails(&["watch", "--attach", "fentry"]);
        assert!(
            err.contains("fentry is not available on this kernel"),
            "{err}"
        );
    }
    if doctor["features"]["kprobes"]["available"] == false {
        let err = tracer_fails(&["watch", "--attach", "kprobe"]);
        assert!(
            err.contains("kprobe is not available on this kernel"),
            "{err}"
        );
    }
    let err = tracer_fails(&["watch", "--output", "/nonexistent-dir/events.json"]);
    assert!(
        err.contains("cannot write --output /nonexistent-dir/events.json"),
        "{err}"
    );
    let err = tracer_fails(&["watch", "--netns", "tracer-no-such-namespace"]);
    assert!(err.contains("tracer-no-such-namespace"), "{err}");
    let err = tracer_fails(&["watch", "--table", "no-such-table"]);
    assert!(err.contains("unknown --table"), "{err}");
    // Issue 16's consistency items: a table id out of range, a journal
    // path that is a file, one duration convention.
    let err = tracer_fails(&["watch", "--iface", "tracer-no-such-namespace:eth0"]);
    assert!(
        err.contains("--iface tracer-no-such-namespace:eth0: no network namespace"),
        "{err}"
    );
    // watch's output filters change nothing for record and guard: refused.
    let err = tracer_fails(&[
        "guard",
        "--comm",
        "x",
        "--expect",
        "throw 10.0.0.0/8 table 52",
    ]);
    assert!(
        err.contains("--comm filters what `watch` shows; `guard` takes every change"),
        "{err}"
    );
    let err = tracer_fails(&[
        "record",
        "--table",
        "52",
        "--journal",
        "/nonexistent-tracer-it",
    ]);
    assert!(
        err.contains("--table filters what `watch` shows; `record`"),
        "{err}"
    );
    let help = String::from_utf8(
        Command::new(tracer_bin())
            .args(["guard", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for flag in ["--comm", "--pid", "--only", "--family"] {
        assert!(!help.contains(flag), "guard --help lists {flag}:\n{help}");
    }
    let err = tracer_fails(&["watch", "--table", "99999999999"]);
    assert!(
        err.contains("out of range (table ids are 0 to 4294967295)"),
        "{err}"
    );
    let file = std::env::temp_dir().join(format!("tracer-it-journal-file-{}", std::process::id()));
    std::fs::write(&file, "").unwrap();
    let err = tracer_fails(&["record", "--journal", file.to_str().unwrap()]);
    std::fs::remove_file(&file).ok();
    assert!(err.contains("not a directory"), "{err}");
    for bad in [
        ["guard", "--grace", "soon"],
        ["watch", "--loop-end-secs", "5 parsecs"],
    ] {
        let out = Command::new(tracer_bin()).args(bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("is not a duration"),
            "{bad:?}: {err}"
        );
    }
    let err = tracer_fails(&["watch", "--btf", "/nonexistent/vmlinux.btf"]);
    assert!(err.contains("--btf /nonexistent/vmlinux.btf"), "{err}");
    let out = Command::new(tracer_bin())
        .args(["watch", "--attach", "magic"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'magic'"));
}

#[test]
fn unprivileged_user_is_told_what_is_missing() {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(tracer_bin())
        .arg("watch")
        .output()
        .expect("setpriv (util-linux)");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs root") && err.contains("CAP_BPF"),
        "{err}"
    );
    // doctor says what it can, and what needs root (issue 16).
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(tracer_bin())
        .arg("doctor")
        .output()
        .expect("setpriv (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("kernel "), "{text}");
    assert!(
        text.contains(&format!("arch       {}", std::env::consts::ARCH)),
        "{text}"
    );
    assert!(text.contains("btf         yes"), "{text}");
    assert!(
        text.contains("not root: probing kprobes") && text.contains("sudo tracer doctor"),
        "{text}"
    );
}

/// SIGHUP (a closed terminal) stops `watch` as SIGTERM does: a clean exit,
/// with the changes already made reported (issue 16).
#[test]
fn sighup_stops_watch_cleanly_with_nothing_lost() {
    let ns = Netns::new("hup");
    let t = Tracer::start(&["--netns", &ns.name]);
    ns.ip("route add blackhole 10.77.0.0/16 table 77");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.pid() as i32, libc::SIGHUP) };
    let stat = format!("/proc/{}/stat", t.pid());
    let start = std::time::Instant::now();
    // Exited (a zombie until reaped), not killed: `stop` checks the status.
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still running after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = t.stop();
    let e = events
        .iter()
        .find(|e| e["kind"] == "route_add" && e["route"]["dst"] == "10.77.0.0/16")
        .unwrap_or_else(|| panic!("the change before SIGHUP is lost: {events:#?}"));
    assert_eq!(e["route"]["table"], 77, "{e}");
    assert_eq!(e["route"]["type"], "blackhole", "{e}");
    assert_eq!(e["process"]["comm"], "ip", "{e}");
}
