//! `tracer guard --repair` on this kernel: the incident lab healed within
//! the grace period plus a second (the owner's own restorations left
//! alone), a remover that keeps removing met with exactly `--repair-limit`
//! repairs and then named, a route that waits for its device, `--dry-run`
//! that changes nothing, SIGHUP reloading the expectations, and bad input
//! refused in one line before anything is attached. Each test in its own
//! namespaces.
mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{
    Netns, Tracer,
    lab::{self, BROKEN_ID, Lab},
};
use serde_json::Value;

const THROW: &str = "throw 192.168.1.0/24 table 52";

fn router(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip("link add v0 type veth peer name v1");
    ns.ip("link set v0 up");
    ns.ip("link set v1 up");
    ns.ip("route add default dev v0 table 52");
    ns.ip("route add throw 192.168.1.0/24 table 52");
    ns.ip("rule add pref 5270 lookup 52");
    ns
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

fn count(t: &Tracer, kind: &str) -> usize {
    of_kind(&t.events(), kind).len()
}

fn wait_count(t: &Tracer, kind: &str, n: usize) {
    t.wait_for(&format!("{n} {kind}"), Duration::from_secs(10), |_| {
        count(t, kind) >= n
    });
}

fn ts(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

fn table52(ns: &str) -> String {
    common::run("ip", &["-n", ns, "route", "show", "table", "52"])
}

/// The repair of `throw 192.168.1.0/24` in `ns`, field by field, undoing a
/// removal by `remover`; its attempt number.
fn check_throw_repair(r: &Value, ns: &str, remover: &str, attempt: u64, limit: u64) {
    let ctx = format!("guard_repair: {r:#}");
    assert_eq!(r["expectation"], THROW, "{ctx}");
    assert_eq!(r["netns"]["name"], ns, "{ctx}");
    assert_eq!(r["route"]["type"], "throw", "{ctx}");
    assert_eq!(r["route"]["dst"], "192.168.1.0/24", "{ctx}");
    assert_eq!(r["route"]["table"], 52, "{ctx}");
    assert!(r.get("rule").is_none(), "{ctx}");
    assert_eq!(r["result"], "ok", "{ctx}");
    assert_eq!(r["attempt"], attempt, "{ctx}");
    assert_eq!(r["limit"], limit, "{ctx}");
    assert_eq!(r["window_secs"], 600.0, "{ctx}");
    assert_eq!(r["dry_run"], false, "{ctx}");
    assert!(r["nl_seq"].is_u64(), "{ctx}");
    assert!(r["waiting_for"].is_null(), "{ctx}");
    let ms = r["ms_after_grace"].as_f64().expect("ms_after_grace");
    assert!(
        (0.0..100.0).contains(&ms),
        "repair {ms} ms after the grace period; {ctx}"
    );
    let removal = &r["removal"];
    assert_eq!(removal["kind"], "route_del", "{ctx}");
    assert_eq!(removal["route"]["dst"], "192.168.1.0/24", "{ctx}");
    assert_eq!(removal["process"]["comm"], remover, "{ctx}");
    assert_eq!(removal["result"], "ok", "{ctx}");
}

/// The guard's own addition, as the restoration of the expectation: by
/// the tracer itself, marked as the guard's, with the repair's sequence
/// number.
fn check_restored_by_guard(events: &[Value], pid: u32, repair: &Value) {
    let restored = of_kind(events, "guard_restored");
    let back = restored
        .iter()
        .find(|e| e["expectation"] == THROW)
        .unwrap_or_else(|| panic!("guard_restored for {THROW}; events: {events:#?}"));
    let c = &back["change"];
    assert_eq!(c["kind"], "route_add", "{back:#}");
    assert_eq!(c["process"]["pid"], pid, "{back:#}");
    assert_eq!(c["process"]["guard"], true, "{back:#}");
    assert_eq!(c["nl_seq"], repair["nl_seq"], "{back:#}");
}

/// The incident: networkd's flush, tailscaled's restore of its rules only.
/// The guard puts the throw route back (and nothing else) within the grace
/// period plus 1 s; the loop ends; the peer's pings are answered.
#[test]
fn the_incident_lab_heals_itself() {
    let lab = Lab::up();
    let iface = lab.iface("tailscale0");
    let output = Out(std::env::temp_dir().join(format!("tracer-it-heal-{}", std::process::id())));
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--output",
            output.0.to_str().unwrap(),
            "--netns",
            &lab.router,
            "--iface",
            &iface,
            "--loop-end-secs",
            "1",
            "--expect-current",
            "--table",
            "52",
            "--grace",
            "2s",
            "--repair",
        ],
    );
    lab.break_it();
    // Within the grace period the router loops.
    lab.ping(&BROKEN_ID.to_string(), 3).assert_looped(3);
    wait_count(&t, "guard_repair", 1);
    let repaired = Instant::now();
    assert!(table52(&lab.router).contains("throw 192.168.1.0/24"));
    lab.ping("9", 3).assert_replied(3);
    if count(&t, "loop") > 0 {
        wait_count(&t, "loop_end", 1);
    }
    // Time for anything else the guard would (wrongly) do.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(repaired.elapsed()));
    let pid = t.pid();
    let events = t.stop();
    let repairs = of_kind(&events, "guard_repair");
    assert_eq!(repairs.len(), 1, "only the throw route: {repairs:#?}");
    let r = repairs[0];
    check_throw_repair(r, &lab.router, lab::FLUSH_COMM, 1, 3);
    // Back within the grace period plus 1 s of its removal.
    let late = ts(&r["ts"]) - ts(&r["removal"]["ts"]);
    eprintln!(
        "throw route back {} ms after its removal (grace 2 s)",
        late.num_milliseconds()
    );
    assert!(late < chrono::TimeDelta::seconds(3), "{late}");
    check_restored_by_guard(&events, pid, r);
    // The rules tailscaled restored in time: neither violated nor repaired.
    let violations = of_kind(&events, "guard_violation");
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_eq!(violations[0]["expectation"], THROW);
    let loops = of_kind(&events, "loop").len();
    assert_eq!(of_kind(&events, "loop_end").len(), loops, "{events:#?}");
    // The report names the guard, not an unknown actor.
    let report = common::run(
        common::tracer_bin().to_str().unwrap(),
        &["report", "--table", "52", output.0.to_str().unwrap()],
    );
    assert!(
        report
            .lines()
            .any(|l| l.contains("repaired by the guard at")
                && l.contains("throw 192.168.1.0/24 table 52")),
        "report:\n{report}"
    );
    assert!(
        !report
            .lines()
            .any(|l| l.contains("repaired by the guard") && l.contains("rule")),
        "the rules were tailscaled's to restore; report:\n{report}"
    );
}

/// A file removed on drop.
struct Out(std::path::PathBuf);

impl Drop for Out {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A remover that keeps removing: `--repair-limit` repairs, then the guard
/// gives up, naming it, and the violation stays open.
#[test]
fn a_remover_that_keeps_removing_is_named_after_the_limit() {
    let ns = router("keep");
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--netns",
            &ns.name,
            "--expect",
            THROW,
            "--grace",
            "1s",
            "--repair",
            "--repair-limit",
            "2",
        ],
    );
    for n in 1..=2 {
        ns.ip("route del throw 192.168.1.0/24 table 52");
        wait_count(&t, "guard_repair", n);
        wait_count(&t, "guard_restored", n);
    }
    ns.ip("route del throw 192.168.1.0/24 table 52");
    wait_count(&t, "guard_repair_gave_up", 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !table52(&ns.name).contains("throw"),
        "not put back a third time"
    );
    let events = t.stop();
    let repairs = of_kind(&events, "guard_repair");
    assert_eq!(repairs.len(), 2, "{repairs:#?}");
    for (i, r) in repairs.iter().enumerate() {
        check_throw_repair(r, &ns.name, "ip", i as u64 + 1, 2);
    }
    let gave = of_kind(&events, "guard_repair_gave_up");
    assert_eq!(gave.len(), 1);
    let g = gave[0];
    assert_eq!(g["expectation"], THROW, "{g:#}");
    assert_eq!(g["attempt"], 2, "{g:#}");
    assert!(g["result"].is_null() && g["nl_seq"].is_null(), "{g:#}");
    assert_eq!(g["removal"]["process"]["comm"], "ip", "{g:#}");
    assert_eq!(g["removal"]["kind"], "route_del", "{g:#}");
    assert_eq!(of_kind(&events, "guard_violation").len(), 3);
    assert_eq!(
        of_kind(&events, "guard_restored").len(),
        2,
        "the violation stays open"
    );
}

/// A route whose device was deleted: no attempt until the device is back
/// (said once), then one repair.
#[test]
fn a_route_waits_for_its_device() {
    let ns = Netns::new("dev");
    let up = |ns: &Netns| {
        ns.ip("link add v0 type veth peer name v1");
        ns.ip("link set v1 up");
        ns.ip("link set v0 up");
    };
    up(&ns);
    ns.ip("route add 10.9.0.0/24 dev v0 table 52");
    let want = "10.9.0.0/24 table 52 dev v0";
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--netns", &ns.name, "--expect", want, "--grace", "1s", "--repair",
        ],
    );
    ns.ip("link del v0");
    wait_count(&t, "guard_repair_waiting", 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&t, "guard_repair"), 0, "no attempt while v0 is gone");
    up(&ns);
    wait_count(&t, "guard_repair", 1);
    wait_count(&t, "guard_restored", 1);
    assert!(table52(&ns.name).contains("10.9.0.0/24 dev v0"));
    std::thread::sleep(Duration::from_millis(600));
    let events = t.stop();
    let waiting = of_kind(&events, "guard_repair_waiting");
    assert_eq!(waiting.len(), 1, "said once: {waiting:#?}");
    assert_eq!(waiting[0]["waiting_for"], "v0");
    assert!(waiting[0]["result"].is_null());
    let repairs = of_kind(&events, "guard_repair");
    assert_eq!(repairs.len(), 1, "{repairs:#?}");
    let r = repairs[0];
    assert_eq!(r["result"], "ok", "{r:#}");
    assert_eq!(r["route"]["dst"], "10.9.0.0/24", "{r:#}");
    assert_eq!(r["route"]["dev"], "v0", "{r:#}");
    assert_eq!(r["removal"]["cause"], "link_del", "{r:#}");
}

/// `--dry-run` says what it would put back and changes nothing.
#[test]
fn dry_run_changes_nothing() {
    let ns = router("dry");
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--netns",
            &ns.name,
            "--expect",
            THROW,
            "--grace",
            "1s",
            "--repair",
            "--dry-run",
        ],
    );
    ns.ip("route del throw 192.168.1.0/24 table 52");
    wait_count(&t, "guard_repair", 1);
    std::thread::sleep(Duration::from_secs(1));
    assert!(!table52(&ns.name).contains("throw"));
    let events = t.stop();
    let r = of_kind(&events, "guard_repair")[0];
    assert_eq!(r["dry_run"], true, "{r:#}");
    assert!(r["result"].is_null() && r["nl_seq"].is_null(), "{r:#}");
    assert_eq!(r["route"]["dst"], "192.168.1.0/24", "{r:#}");
    assert_eq!(of_kind(&events, "guard_restored").len(), 0);
}

/// SIGHUP reads --expect-file again and learns --expect-current again.
#[test]
fn sighup_reloads_the_expectations() {
    let ns = router("hup");
    let file = std::env::temp_dir().join(format!("tracer-it-hup-{}", std::process::id()));
    std::fs::write(&file, format!("{THROW}\n")).unwrap();
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--netns",
            &ns.name,
            "--expect-file",
            file.to_str().unwrap(),
            "--expect-current",
            "--table",
            "1000",
            "--grace",
            "1s",
        ],
    );
    std::fs::write(&file, "rule 5270 table 52\n").unwrap();
    ns.ip("route add 10.5.0.0/24 dev v0 table 1000");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.pid() as i32, libc::SIGHUP) };
    wait_count(&t, "guard_reloaded", 1);
    ns.ip("rule del pref 5270");
    wait_count(&t, "guard_violation", 1);
    let events = t.stop();
    let _ = std::fs::remove_file(&file);
    let r = of_kind(&events, "guard_reloaded")[0];
    assert_eq!(
        r["added"],
        serde_json::json!(["10.5.0.0/24 dev v0 table 1000", "rule 5270 table 52"]),
        "{r:#}"
    );
    assert_eq!(r["removed"], serde_json::json!([THROW]), "{r:#}");
    assert_eq!(r["expectations"], 2, "{r:#}");
    assert!(r["error"].is_null(), "{r:#}");
    let v = of_kind(&events, "guard_violation");
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0]["expectation"], "rule 5270 table 52");
}

/// Bad input: one line on stderr, before anything is attached.
#[test]
fn bad_repair_input_is_one_clear_line() {
    let run = |args: &[&str]| {
        let started = Instant::now();
        let out = Command::new(common::tracer_bin())
            .arg("guard")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "no ready line");
        assert!(started.elapsed() < Duration::from_secs(2), "failed fast");
        let e = String::from_utf8(out.stderr).unwrap();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    };
    let e = run(&["--repair", "--expect", "throw 192.168.1.0/24"]);
    assert!(
        e.starts_with("tracer: --repair: expectation \"throw 192.168.1.0/24\" names no table"),
        "{e}"
    );
    let e = run(&["--repair", "--expect", "rule 5270"]);
    assert!(e.contains("names no table"), "{e}");
    let e = run(&[
        "--repair",
        "--netns",
        "tracer-it-no-such-ns",
        "--expect",
        THROW,
    ]);
    assert!(e.contains("tracer-it-no-such-ns"), "{e}");
    assert!(e.contains("no network namespace named"), "{e}");
    // clap's own usage error, also before anything is attached.
    let out = Command::new(common::tracer_bin())
        .args(["guard", "--dry-run", "--expect", THROW])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repair"));
}

/// dist/tracer-guard.service passes `systemd-analyze verify` (with its
/// ExecStart pointed at the binary under test).
#[test]
fn the_guard_unit_verifies() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/tracer-guard.service");
    let unit = std::fs::read_to_string(&src).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/tracer guard --expect-current --table 52"),
        "{unit}"
    );
    assert!(unit.contains("--repair"), "{unit}");
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "{unit}"
    );
    let dir = std::env::temp_dir().join(format!("tracer-it-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("tracer-guard.service");
    let bin = common::tracer_bin();
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/tracer", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (package systemd)");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("tracer-guard.service:"),
        "systemd-analyze verify: {err}"
    );
}
