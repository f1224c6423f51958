//! The names the tracer gives namespaces, on this machine's kernel:
//! `explain` and `guard` take any of them (`pid:N`, a bind mount's), and
//! namespaces made and deleted quickly, whose inodes the kernel reuses at
//! once, keep their own names, as does one `ip netns add` is still making.
mod common;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    Tracer,
    holder::{BindMount, Holder, in_ns},
    run, unique,
};
use serde_json::{Value, json};

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
