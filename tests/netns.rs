//! Namespaces without an `ip netns` name, on this machine's kernel: one
//! held only by a process (`unshare -n`, as LXC/Incus hold theirs) and one
//! bind-mounted in a temporary directory (as Docker does under
//! /run/docker/netns). Each is mirrored like a named one: its changes carry
//! the route and rule as the kernel holds them, and the name the tracer
//! gives it. New ones are picked up, and gone ones reported, within 1 s.
mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant, SystemTime},
};

use common::{Tracer, doctor, run};
use serde_json::{Value, json};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!(
        "tracer-it-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace held only by a sleeping process (`unshare -n
/// sleep`), with a veth pair `v0`/`v1` up inside; killed on drop.
struct Holder {
    child: Child,
}

impl Holder {
    fn new() -> Holder {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare -n sleep");
        let h = Holder { child };
        // unshare execs sleep once the namespace is made.
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let start = Instant::now();
        while std::fs::read_link(format!("/proc/{}/ns/net", h.pid())).ok() == Some(own.clone())
            || std::fs::read_to_string(format!("/proc/{}/comm", h.pid()))
                .is_ok_and(|c| c.trim() != "sleep")
        {
            assert!(start.elapsed() < Duration::from_secs(5), "unshare too slow");
            std::thread::sleep(Duration::from_millis(5));
        }
        h
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn inode(&self) -> u64 {
        let link = std::fs::read_link(format!("/proc/{}/ns/net", self.pid())).unwrap();
        let s = link.to_string_lossy();
        s.trim_start_matches("net:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }

    /// `ip ARGS` inside the namespace; returns the pid of `ip` (nsenter
    /// execs it).
    fn ip(&self, args: &str) -> u32 {
        let pid = self.pid().to_string();
        let mut argv = vec!["-t", pid.as_str(), "-n", "ip"];
        argv.extend(args.split_whitespace());
        let child = Command::new("nsenter")
            .args(&argv)
            .spawn()
            .expect("nsenter");
        let ip = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ip {args} failed in {pid}");
        ip
    }

    fn veth(&self) {
        self.ip("link add v0 type veth peer name v1");
        self.ip("link set v1 up");
        self.ip("link set v0 up");
    }

    fn ifindex(&self, dev: &str) -> u64 {
        let pid = self.pid().to_string();
        let out = run(
            "nsenter",
            &["-t", &pid, "-n", "ip", "-j", "link", "show", dev],
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0]["ifindex"].as_u64().unwrap()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The namespace of `pid` bind-mounted on `DIR/NAME` in a temporary
/// directory, the way Docker keeps its own; unmounted and removed on drop.
struct BindMount {
    dir: PathBuf,
    name: String,
}

impl BindMount {
    fn new(pid: u32) -> BindMount {
        let name = unique("bind");
        let dir = std::env::temp_dir().join(unique("netns-dir"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(&name);
        std::fs::write(&path, "").unwrap();
        let b = BindMount { dir, name };
        run(
            "mount",
            &[
                "--bind",
                &format!("/proc/{pid}/ns/net"),
                path.to_str().unwrap(),
            ],
        );
        b
    }

    fn umount(&self) {
        let _ = Command::new("umount")
            .arg(self.dir.join(&self.name))
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        self.umount();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn expected_source() -> String {
    doctor()["hooks"]["route4_del"]["mechanism"]
        .as_str()
        .expect("mechanism")
        .to_string()
}

fn in_ns(e: &Value, inode: u64) -> bool {
    e["netns"]["inode"] == inode
}

/// A route addition and removal and a rule addition in the namespace of
/// `h`, each asserted field by field as the kernel holds them, with the
/// process that made it and the name `name` the tracer gives the
/// namespace.
fn changes_are_read_from_the_kernel(t: &Tracer, h: &Holder, name: &str) {
    let source = expected_source();
    let inode = h.inode();
    let ifindex = h.ifindex("v0");
    let add = h.ip("route add 10.61.0.0/24 dev v0 proto static");
    let rule = h.ip("rule add pref 1061 from 10.61.0.0/24 table 100 proto static");
    let del = h.ip("route del 10.61.0.0/24 dev v0");
    t.wait_for("the route removal", Duration::from_secs(10), |e| {
        e["kind"] == "route_del" && in_ns(e, inode)
    });
    let events: Vec<Value> = t
        .events()
        .into_iter()
        .filter(|e| in_ns(e, inode))
        .filter(|e| e["route"]["dst"] == "10.61.0.0/24" || e["rule"]["priority"] == 1061)
        .collect();
    let netns = json!({"inode": inode, "name": name});
    let route = json!({
        "family": "inet", "table": 254, "table_name": "main", "type": "unicast",
        "dst": "10.61.0.0/24", "gateway": null, "dev": "v0", "ifindex": ifindex,
        "metric": 0, "protocol": "static", "scope": "link",
    });
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["route_add", "rule_add", "route_del"],
        "events: {events:#?}"
    );
    for (e, kind, pid) in [
        (&events[0], "route_add", add),
        (&events[1], "rule_add", rule),
        (&events[2], "route_del", del),
    ] {
        assert_eq!(e["kind"], kind);
        assert_eq!(e["source"], source.as_str(), "{e}");
        assert_eq!(e["netns"], netns, "{e}");
        assert_eq!(e["process"]["pid"], pid, "{e}");
        assert_eq!(e["process"]["comm"], "ip", "{e}");
        assert_eq!(e["result"], "ok", "{e}");
        assert_eq!(e["cause"], Value::Null, "{e}");
        assert!(e.get("note").is_none(), "nothing unknown: {e}");
        if kind == "rule_add" {
            assert_eq!(
                e["rule"],
                json!({
                    "family": "inet", "priority": 1061, "table": 100, "table_name": null,
                    "action": "table", "goto": null, "src": "10.61.0.0/24", "dst": null,
                    "fwmark": null, "fwmask": null, "iif": null, "oif": null,
                    "uid_range": null, "ipproto": null, "sport": null, "dport": null,
                    "tos": null, "suppress_prefixlen": null, "invert": false,
                    "protocol": "static",
                }),
                "{e}"
            );
        } else {
            assert_eq!(e["route"], route, "{e}");
        }
    }
}

fn ready_lists(t: &Tracer, inode: u64, name: &str) {
    let listed = t.ready["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["inode"] == inode && n["name"] == name);
    assert!(listed, "ready lacks {name} ({inode}): {}", t.ready);
}

#[test]
fn a_namespace_held_by_a_process_is_named_pid_n() {
    let h = Holder::new();
    h.veth();
    let name = format!("pid:{}", h.pid());
    // --netns takes the name too (and so watches only this namespace).
    let t = Tracer::start(&["--netns", &name]);
    ready_lists(&t, h.inode(), &name);
    assert_eq!(t.ready["namespaces"].as_array().unwrap().len(), 1);
    changes_are_read_from_the_kernel(&t, &h, &name);
    t.stop();
}

#[test]
fn a_bind_mounted_namespace_is_named_by_its_mount() {
    let h = Holder::new();
    h.veth();
    let mount = BindMount::new(h.pid());
    let t = Tracer::start(&[]);
    ready_lists(&t, h.inode(), &mount.name);
    changes_are_read_from_the_kernel(&t, &h, &mount.name);
    t.stop();
    // And by that name with --netns.
    let t = Tracer::start(&["--netns", &mount.name]);
    ready_lists(&t, h.inode(), &mount.name);
    assert_eq!(t.ready["namespaces"].as_array().unwrap().len(), 1);
    t.stop();
}

fn within(t: &Tracer, what: &str, since: SystemTime, pred: impl Fn(&Value) -> bool + Copy) {
    t.wait_for(what, Duration::from_secs(5), pred);
    let at = t.arrival(pred).unwrap();
    let took = at.duration_since(since).unwrap_or_default();
    assert!(took < Duration::from_secs(1), "{what} took {took:?}");
}

#[test]
fn namespaces_that_come_and_go_are_reported_within_a_second() {
    let t = Tracer::start(&[]);

    // A namespace made after ready.
    let since = SystemTime::now();
    let mut h = Holder::new();
    let inode = h.inode();
    let name = format!("pid:{}", h.pid());
    within(&t, "the new namespace", since, |e| {
        e["kind"] == "netns_new" && in_ns(e, inode)
    });
    let new = t
        .events()
        .into_iter()
        .find(|e| e["kind"] == "netns_new" && in_ns(e, inode))
        .unwrap();
    assert_eq!(new["source"], "tracer");
    assert_eq!(new["netns"], json!({"inode": inode, "name": name}));
    // Mirrored from then on: its changes are read from the kernel.
    h.veth();
    changes_are_read_from_the_kernel(&t, &h, &name);

    // Gone: its process killed.
    let since = SystemTime::now();
    h.kill();
    within(&t, "the gone namespace", since, |e| {
        e["kind"] == "netns_gone" && in_ns(e, inode)
    });
    let gone = t
        .events()
        .into_iter()
        .find(|e| e["kind"] == "netns_gone" && in_ns(e, inode))
        .unwrap();
    assert_eq!(gone["netns"], json!({"inode": inode, "name": name}));

    // A bind-mounted one made after ready, gone when unmounted and its
    // process killed.
    let since = SystemTime::now();
    let mut h = Holder::new();
    let mount = BindMount::new(h.pid());
    let inode = h.inode();
    within(&t, "the new bind-mounted namespace", since, |e| {
        e["kind"] == "netns_new" && in_ns(e, inode)
    });
    let since = SystemTime::now();
    mount.umount();
    h.kill();
    within(&t, "the unmounted namespace", since, |e| {
        e["kind"] == "netns_gone" && in_ns(e, inode)
    });
    t.stop();
}

/// A namespace only a process held (`unshare -n sleep`) ends when that
/// process is killed: the routes it took with it name that `sleep`, read
/// while it held the namespace, field by field.
#[test]
fn routes_of_a_namespace_held_by_a_process_alone_go_with_that_process() {
    let mut h = Holder::new();
    h.veth();
    h.ip("addr add 10.64.0.1/24 dev v0");
    let (pid, inode) = (h.pid(), h.inode());
    let t = Tracer::start(&["--netns", &format!("pid:{pid}")]);
    // At least one scan of the scanner thread sees it held.
    std::thread::sleep(Duration::from_millis(700));
    h.kill();
    t.wait_for("the namespace's end", Duration::from_secs(5), |e| {
        e["kind"] == "netns_gone" && in_ns(e, inode)
    });
    let events = t.stop();
    let sleep_exe = std::fs::canonicalize(run("sh", &["-c", "command -v sleep"]).trim()).unwrap();
    let parent_comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let gone: Vec<&Value> = events
        .iter()
        .filter(|e| e["cause"] == "netns_exit")
        .collect();
    assert!(
        gone.iter()
            .any(|e| e["route"]["dst"] == "10.64.0.0/24" && e["route"]["dev"] == "v0"),
        "the address's prefix route went with the namespace: {gone:#?}"
    );
    for e in &gone {
        assert_eq!(e["kind"], "route_del", "{e}");
        assert!(in_ns(e, inode), "{e}");
        assert_eq!(e["netns"]["name"], format!("pid:{pid}"), "{e}");
        assert_eq!(e["result"], "ok", "{e}");
        let p = &e["process"];
        assert_eq!(p["pid"], pid, "{e}");
        assert_eq!(p["tid"], pid, "{e}");
        assert_eq!(p["comm"], "sleep", "{e}");
        assert_eq!(p["exe"], sleep_exe.to_str().unwrap(), "{e}");
        assert_eq!(p["ppid"], std::process::id(), "{e}");
        assert_eq!(p["parent_comm"], parent_comm.trim(), "{e}");
        assert_eq!(p["uid"], 0, "{e}");
        assert_eq!(
            e["note"],
            "removed with its network namespace, which went away when this process exited: it was the only one holding it at the last scan, and no bind mount held it",
            "{e}"
        );
    }
}

/// `explain --netns` and `guard --netns` take every name `watch` gives a
/// namespace: `pid:N` of a process's, and a bind mount's file name in a
/// directory other than /run/netns.
#[test]
fn explain_and_guard_take_any_namespace_name() {
    let h = Holder::new();
    h.veth();
    h.ip("addr add 10.62.0.1/24 dev v0");
    h.ip("route add 10.63.0.0/24 via 10.62.0.2");
    let mount = BindMount::new(h.pid());
    let empty = std::env::temp_dir().join(unique("empty.jsonl"));
    std::fs::write(&empty, "").unwrap();
    for name in [format!("pid:{}", h.pid()), mount.name.clone()] {
        let out = Command::new(common::tracer_bin())
            .args([
                "explain",
                "10.63.0.5",
                "--json",
                "--netns",
                &name,
                "--journal",
            ])
            .arg(&empty)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "explain --netns {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(v["lookup"]["netns"]["inode"], h.inode(), "{v}");
        assert_eq!(v["lookup"]["answered_by"], "kernel", "{v}");
        assert_eq!(v["lookup"]["route"]["dst"], "10.63.0.0/24", "{v}");
        assert_eq!(v["lookup"]["route"]["gateway"], "10.62.0.2", "{v}");
        assert_eq!(v["lookup"]["route"]["dev"], "v0", "{v}");
    }
    let t = Tracer::start_cmd(
        "guard",
        &[
            "--netns",
            &format!("pid:{}", h.pid()),
            "--expect",
            "10.63.0.0/24 table main",
        ],
    );
    assert_eq!(t.ready["namespaces"][0]["inode"], h.inode());
    t.stop();
    let out = Command::new(common::tracer_bin())
        .args([
            "explain",
            "10.63.0.5",
            "--netns",
            "no-such-ns-anywhere",
            "--journal",
        ])
        .arg(&empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("pid:{}", h.pid())) || err.contains("there are"),
        "{err}"
    );
    std::fs::remove_file(&empty).ok();
    mount.umount();
}

/// `ip netns add NAME`, deleted on drop.
struct Named(String);

impl Drop for Named {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// The kernel gives a new namespace the inode of one just freed, so one
/// inode holds many names within a second: each change is named after the
/// namespace it happened in, late events of a gone one included (4 of 80
/// were named after the next namespace before the fix).
#[test]
fn namespaces_made_and_deleted_quickly_keep_their_own_names() {
    let t = Tracer::start(&[]);
    let base = unique("quick");
    const N: usize = 40;
    for i in 0..N {
        let ns = Named(format!("{base}-{i}"));
        run("ip", &["netns", "add", &ns.0]);
        let ip = |args: &[&str]| {
            let mut a = vec!["-n", ns.0.as_str()];
            a.extend_from_slice(args);
            run("ip", &a);
        };
        ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ip(&["link", "set", "v0", "up"]);
        ip(&["addr", "add", &format!("10.88.{i}.1/24"), "dev", "v0"]);
        ip(&[
            "route",
            "add",
            &format!("10.99.{i}.0/24"),
            "via",
            &format!("10.88.{i}.2"),
            "table",
            "100",
        ]);
        std::thread::sleep(Duration::from_millis(50));
        drop(ns);
    }
    let me = std::process::id();
    let ours = |e: &Value| {
        e["kind"] == "route_add"
            && e["process"]["ppid"] == me
            && e["route"]["table"] == 100
            && e["route"]["dst"]
                .as_str()
                .is_some_and(|d| d.starts_with("10.99."))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = t.events();
    while events.iter().filter(|e| ours(e)).count() < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        events = t.events();
    }
    let seen = events.iter().filter(|e| ours(e)).count();
    assert_eq!(
        seen,
        N,
        "our route additions; others:\n{}",
        events
            .iter()
            .filter(|e| {
                let s = e.to_string();
                (s.contains("10.99.") && !ours(e))
                    || (s.contains(&base)
                        && !events
                            .iter()
                            .any(|o| ours(o) && o["netns"]["name"] == e["netns"]["name"]))
            })
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (mut inodes, mut unnamed) = (std::collections::HashSet::new(), 0);
    for e in events.iter().filter(|e| ours(e)) {
        let dst = e["route"]["dst"].as_str().unwrap();
        let i = dst.split('.').nth(2).unwrap();
        // A namespace gone before any scan found it has no name to give
        // (null), never the name of the next one with its inode.
        if e["netns"]["name"].is_null() {
            unnamed += 1;
        } else {
            assert_eq!(
                e["netns"]["name"],
                format!("{base}-{i}"),
                "{dst} named after another namespace: {e}"
            );
        }
        inodes.insert(e["netns"]["inode"].as_u64());
    }
    assert!(unnamed <= N / 4, "{unnamed} of {N} unnamed");
    eprintln!(
        "{N} namespaces had {} inodes; {unnamed} gone before a scan found them",
        inodes.len()
    );
    t.stop();
}

/// An empty file in /run/netns, then a bind mount on it, as `ip netns add`
/// makes them; unmounted and removed on drop.
struct Adding(PathBuf);

impl Drop for Adding {
    fn drop(&mut self) {
        let p = self.0.to_string_lossy().into_owned();
        let _ = Command::new("umount")
            .arg(&p)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `ip netns add` creates /run/netns/NAME, enters a new namespace, then
/// bind-mounts it there: a scan between the two finds the namespace by its
/// process alone. It is named by its mount, not `pid:N` first and its name
/// later (here the steps are 1.2 s apart, so every scan falls between).
#[test]
fn a_namespace_ip_netns_add_is_making_is_named_by_its_mount() {
    let t = Tracer::start(&[]);
    let name = unique("adding");
    std::fs::create_dir_all("/run/netns").unwrap();
    let adding = Adding(PathBuf::from("/run/netns").join(&name));
    std::fs::File::create(&adding.0).unwrap();
    let h = Holder::new();
    let inode = h.inode();
    std::thread::sleep(Duration::from_millis(1200));
    run(
        "mount",
        &[
            "--bind",
            &format!("/proc/{}/ns/net", h.pid()),
            adding.0.to_str().unwrap(),
        ],
    );
    t.wait_for("the new namespace", Duration::from_secs(5), |e| {
        e["kind"] == "netns_new" && in_ns(e, inode)
    });
    let new: Vec<Value> = t
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "netns_new" && in_ns(e, inode))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["netns"], json!({"inode": inode, "name": name}));
    drop(adding);
    drop(h);
    t.stop();
}
