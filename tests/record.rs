//! `tracer record` on this kernel, each test in its own namespace and
//! journal directory: the journal holds ready, the snapshot and the changes;
//! a SIGKILL in the middle of a burst leaves only whole lines, and a restart
//! goes on in a new file; a full disk is reported, tracing goes on, and
//! writing resumes when space returns.
mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{Netns, Tracer};
use serde_json::Value;

/// A journal directory under /tmp, removed (and unmounted) on drop.
struct Dir {
    path: PathBuf,
    mounted: bool,
}

impl Dir {
    fn new(tag: &str) -> Dir {
        let path =
            std::env::temp_dir().join(format!("tracer-it-journal-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir {
            path,
            mounted: false,
        }
    }

    /// A tmpfs of `size` (e.g. "512k") mounted on the directory.
    fn tmpfs(tag: &str, size: &str) -> Dir {
        let mut d = Dir::new(tag);
        common::run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tracer-it",
                d.s(),
            ],
        );
        d.mounted = true;
        d
    }

    fn s(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The journal's files, oldest first.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("tracer-") && n.ends_with(".jsonl")
        })
        .collect();
    v.sort();
    v
}

/// Every journal line as JSON, once the recorder has stopped; panics on a
/// partial or non-JSON line.
fn journal(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    scan(dir, true, |v| out.push(v));
    out
}

/// The whole lines written so far, while the recorder runs: the newest file
/// may end in a line that is being written.
fn journal_so_far(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    scan(dir, false, |v| out.push(v));
    out
}

/// Bytes of whole lines in `file`.
fn whole_len(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i as u64 + 1)
}

/// Each journal line as JSON, in order, to `f`; panics on a non-JSON line,
/// and (`strict`) on a partial last line.
fn scan(dir: &Path, strict: bool, mut f: impl FnMut(Value)) {
    let all = files(dir);
    for file in &all {
        let f_ = file;
        let mut text = std::fs::read_to_string(f_).unwrap();
        if !strict && Some(file) == all.last() {
            text.truncate(whole_len(f_) as usize);
        }
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends in a partial line: {:?}",
            f_.display(),
            &text[text.len().saturating_sub(200)..]
        );
        for (n, line) in text.lines().enumerate() {
            f(serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON ({e}): {line}", f_.display(), n + 1)));
        }
    }
}

fn wait_journal(dir: &Path, what: &str, timeout: Duration, pred: impl Fn(&[Value]) -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if pred(&journal_so_far(dir)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines: Vec<String> = journal_so_far(dir).iter().map(|v| v.to_string()).collect();
    panic!(
        "journal: no {what} within {timeout:?}; it holds:\n{}",
        lines.join("\n")
    );
}

fn routes_in_table(v: &[Value], kind: &str, table: u64) -> usize {
    v.iter()
        .filter(|e| e["kind"] == kind && e["route"]["table"] == table)
        .count()
}

/// A namespace with a veth whose routes go into table 100.
fn namespace(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip("link add v0 type veth peer name v1");
    ns.ip("link set v0 up");
    ns.ip("link set v1 up");
    ns
}

/// `ip -n NS -batch -` with `n` route commands into table 100.
fn batch(ns: &Netns, verb: &str, from: u32, n: u32) -> std::process::Child {
    let mut cmds = String::new();
    for i in from..from + n {
        cmds.push_str(&format!(
            "route {verb} 10.{}.{}.{}/32 dev v0 table 100\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    // Named for the namespace too: tests run in parallel, each with its own.
    let file = std::env::temp_dir().join(format!("tracer-it-batch-{}-{from}", ns.name));
    std::fs::write(&file, cmds).unwrap();
    Command::new("ip")
        .args(["-n", &ns.name, "-batch"])
        .arg(&file)
        .spawn()
        .unwrap()
}

#[test]
fn journal_holds_ready_snapshot_then_changes() {
    let ns = namespace("rec");
    ns.ip("route add throw 192.168.1.0/24 table 100");
    ns.ip("route add default dev v0 table 100");
    ns.ip("rule add pref 5270 lookup 100");
    let dir = Dir::new("order");
    let t = Tracer::start_cmd("record", &["--journal", dir.s(), "--netns", &ns.name]);
    // stdout shows only what needs attention: no snapshot, no changes.
    ns.ip("route del throw 192.168.1.0/24 table 100");
    wait_journal(&dir.path, "route_del", Duration::from_secs(10), |v| {
        routes_in_table(v, "route_del", 100) == 1
    });
    let shown = t.stop();
    assert_eq!(
        shown
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["ready"]
    );
    let v = journal(&dir.path);
    assert_eq!(v[0]["kind"], "ready", "{}", v[0]);
    let end = v
        .iter()
        .position(|e| e["kind"] == "snapshot_end")
        .expect("snapshot_end");
    let snap = &v[1..end];
    assert!(snap.iter().all(|e| e["kind"] == "snapshot"));
    assert!(snap.iter().all(|e| e["netns"]["name"] == ns.name.as_str()));
    let throw = snap
        .iter()
        .find(|e| e["route"]["table"] == 100 && e["route"]["type"] == "throw")
        .expect("the throw route in the snapshot");
    assert_eq!(throw["route"]["dst"], "192.168.1.0/24");
    assert_eq!(throw["source"], "netlink");
    let default = snap
        .iter()
        .find(|e| e["route"]["table"] == 100 && e["route"]["dst"] == "0.0.0.0/0")
        .expect("the default route in the snapshot");
    assert_eq!(default["route"]["dev"], "v0");
    assert!(
        snap.iter()
            .any(|e| e["rule"]["priority"] == 5270 && e["rule"]["table"] == 100),
        "rule 5270 in the snapshot"
    );
    assert_eq!(
        v[end]["routes"].as_u64().unwrap() + v[end]["rules"].as_u64().unwrap(),
        snap.len() as u64
    );
    let del = v
        .iter()
        .find(|e| e["kind"] == "route_del")
        .expect("route_del");
    assert_eq!(del["route"]["dst"], "192.168.1.0/24");
    assert_eq!(del["route"]["type"], "throw");
    assert_eq!(del["process"]["comm"], "ip");
    assert_eq!(del["result"], "ok");
    assert_eq!(files(&dir.path).len(), 1);
}

#[test]
fn sigkill_mid_burst_leaves_whole_lines_and_a_restart_goes_on() {
    let ns = namespace("kill");
    let dir = Dir::new("kill");
    // Files large enough for the restart's snapshot of the 50,000 routes
    // (some 20 MB): one file per recording.
    let args = [
        "--journal",
        dir.s(),
        "--netns",
        &ns.name,
        "--max-file-size",
        "64MiB",
    ];
    let t = Tracer::start_cmd("record", &args);
    let mut burst = batch(&ns, "add", 0, 50_000);
    // Kill once part of the burst is in the journal.
    wait_journal(
        &dir.path,
        "part of the burst",
        Duration::from_secs(30),
        |v| routes_in_table(v, "route_add", 100) >= 2_000,
    );
    t.kill9();
    // The kill may have cut a write short: whole lines are what counts.
    let before = journal_so_far(&dir.path);
    let sizes: Vec<u64> = files(&dir.path).iter().map(|f| whole_len(f)).collect();
    assert!(burst.wait().unwrap().success());
    let added = routes_in_table(&before, "route_add", 100);
    assert!(
        (2_000..50_000).contains(&added),
        "killed mid-burst: {added} additions recorded"
    );

    // The restart cuts a partial last line (if the kill left one), keeps
    // every whole line, and writes a new file.
    let t = Tracer::start_cmd("record", &args);
    ns.ip("route add 172.16.0.0/12 dev v0 table 100");
    wait_journal(
        &dir.path,
        "the change after the restart",
        Duration::from_secs(10),
        |v| {
            v.iter()
                .any(|e| e["kind"] == "route_add" && e["route"]["dst"] == "172.16.0.0/12")
        },
    );
    t.stop();
    let fs = files(&dir.path);
    assert_eq!(fs.len(), 2, "{fs:?}");
    assert_eq!(fs[0].metadata().unwrap().len(), sizes[0]);
    let after = journal(&dir.path);
    assert_eq!(&after[..before.len()], &before[..]);
    // The second recording starts with its own ready and snapshot, which
    // holds every route the burst added.
    let second = &after[before.len()..];
    assert_eq!(second[0]["kind"], "ready");
    let snap = second
        .iter()
        .filter(|e| e["kind"] == "snapshot" && e["route"]["table"] == 100)
        .count();
    assert_eq!(snap, 50_000);
}

#[test]
fn a_full_disk_is_reported_tracing_goes_on_and_writing_resumes() {
    let ns = namespace("full");
    let dir = Dir::tmpfs("full", "4m");
    // Leave about 100 KiB free.
    let filler = dir.path.join("filler");
    common::run(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=1k",
            "count=3900",
            "status=none",
        ],
    );
    let t = Tracer::start_cmd("record", &["--journal", dir.s(), "--netns", &ns.name]);
    // About 600 bytes per event: 2,000 changes do not fit.
    let mut b = batch(&ns, "add", 0, 2_000);
    assert!(b.wait().unwrap().success());
    t.wait_for("journal_error", Duration::from_secs(10), |e| {
        e["kind"] == "journal_error"
    });
    let err = t
        .events()
        .into_iter()
        .find(|e| e["kind"] == "journal_error")
        .unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("No space left"),
        "{err}"
    );
    assert_eq!(err["source"], "tracer");
    // Still tracing while the disk is full.
    let mut b = batch(&ns, "del", 0, 100);
    assert!(b.wait().unwrap().success());
    // Space returns.
    std::fs::remove_file(&filler).unwrap();
    t.wait_for("journal_resumed", Duration::from_secs(10), |e| {
        e["kind"] == "journal_resumed"
    });
    ns.ip("route add 172.16.0.0/12 dev v0 table 100");
    wait_journal(
        &dir.path,
        "the change after space returned",
        Duration::from_secs(10),
        |v| {
            v.iter()
                .any(|e| e["kind"] == "route_add" && e["route"]["dst"] == "172.16.0.0/12")
        },
    );
    t.stop();
    let v = journal(&dir.path);
    let resumed = v
        .iter()
        .find(|e| e["kind"] == "journal_resumed")
        .expect("journal_resumed in the journal too");
    let dropped = resumed["dropped"].as_u64().unwrap();
    // Held in memory, not dropped: every change is in the journal.
    assert_eq!(dropped, 0, "{resumed}");
    assert_eq!(routes_in_table(&v, "route_add", 100), 2_000 + 1);
    assert_eq!(routes_in_table(&v, "route_del", 100), 100);
    // The error is in the journal as well, before the resume.
    let e = v.iter().position(|e| e["kind"] == "journal_error");
    let r = v.iter().position(|e| e["kind"] == "journal_resumed");
    assert!(e.is_some() && e < r, "journal_error then journal_resumed");
}

#[test]
fn rotation_under_a_million_route_flush() {
    let n: u32 = std::env::var("TRACER_IT_FLUSH_ROUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let ns = namespace("rot");
    let mut b = batch(&ns, "add", 0, n);
    assert!(b.wait().unwrap().success());
    let dir = Dir::new("rot");
    let t = Tracer::start_cmd(
        "record",
        &[
            "--journal",
            dir.s(),
            "--netns",
            &ns.name,
            "--max-file-size",
            "64MiB",
            "--max-total-size",
            "100GiB",
        ],
    );
    let started = Instant::now();
    ns.ip("route flush table 100");
    // Count removals as they are written, reading each file's new bytes
    // only (the journal reaches hundreds of megabytes).
    let mut seen: std::collections::HashMap<PathBuf, u64> = Default::default();
    let mut dels = 0usize;
    while dels < n as usize && started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(500));
        for f in files(&dir.path) {
            let from = seen.get(&f).copied().unwrap_or(0);
            let mut file = std::fs::File::open(&f).unwrap();
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(from)).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).unwrap();
            // Whole lines only; a line being written is read next time.
            let whole = text.rfind('\n').map_or(0, |i| i + 1);
            dels += text[..whole]
                .lines()
                .filter(|l| l.contains("\"kind\":\"route_del\""))
                .count();
            seen.insert(f, from + whole as u64);
        }
    }
    let shown = t.stop();
    let lost: u64 = shown
        .iter()
        .filter(|e| e["kind"] == "lost")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    // Parse every line, one at a time (two million of them).
    let (mut dels, mut snaps) = (0usize, 0usize);
    // For a failure's message: removals without a process or with a note.
    let (mut no_process, mut notes) = (0usize, std::collections::BTreeMap::new());
    scan(&dir.path, true, |e| {
        if e["route"]["table"] == 100 {
            match e["kind"].as_str() {
                Some("route_del") => {
                    dels += 1;
                    no_process += e["process"].is_null() as usize;
                    if let Some(n) = e["note"].as_str() {
                        *notes.entry(n.to_string()).or_insert(0usize) += 1;
                    }
                }
                Some("snapshot") => snaps += 1,
                _ => {}
            }
        }
    });
    assert_eq!(snaps, n as usize);
    assert_eq!(
        dels, n as usize,
        "{dels} removals recorded for {n} routes; {lost} reported lost; {no_process} without a process; notes: {notes:?}"
    );
    let fs = files(&dir.path);
    assert!(
        fs.len() >= 2,
        "a 64 MiB limit rotated {} times",
        fs.len() - 1
    );
    for f in &fs {
        let len = f.metadata().unwrap().len();
        // A file ends at the first batch past the limit.
        assert!(len < 80 << 20, "{} is {len} bytes", f.display());
    }
    eprintln!(
        "{n} routes flushed: {} files, {dels} route_del recorded in {:.1} s",
        fs.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The shipped unit file: systemd accepts it (where systemd-analyze is
/// installed), and its ExecStart line starts a recorder that records.
#[test]
fn the_service_unit_starts_a_recorder() {
    let unit_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/tracer-record.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in the unit");
    let mut argv = exec.split_whitespace();
    assert_eq!(argv.next(), Some("/usr/local/bin/tracer"), "{exec}");
    let bin = common::tracer_bin();
    let bin = bin.to_str().unwrap();
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_ok_and(|o| o.status.success()) {
        let copy =
            std::env::temp_dir().join(format!("tracer-record-{}.service", std::process::id()));
        std::fs::write(&copy, unit.replace("/usr/local/bin/tracer", bin)).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&copy);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("systemd-analyze is not installed: the unit's syntax is not checked here");
    }
    // The unit's own arguments, with the journal in a test directory and
    // only the test's namespace watched.
    let dir = Dir::new("unit");
    let args: Vec<String> = argv
        .map(|a| {
            if a == "/var/lib/tracer/journal" {
                dir.s().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    assert_eq!(args[0], "record", "{exec}");
    let ns = namespace("unit");
    let mut rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    rest.extend(["--netns", &ns.name]);
    let t = Tracer::start_cmd("record", &rest);
    ns.ip("route add 10.9.0.0/16 dev v0 table 100");
    wait_journal(&dir.path, "the route_add", Duration::from_secs(10), |v| {
        routes_in_table(v, "route_add", 100) == 1
    });
    t.stop();
}
