//! Namespaces without an `ip netns` name, as the tests make them: one held
//! only by a sleeping process (`unshare -n`, as LXC/Incus hold theirs), and
//! one bind-mounted in a temporary directory (as Docker does under
//! /run/docker/netns). Both are undone on drop.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{run, unique};

/// Whether event `e` happened in the namespace of inode `inode`.
pub fn in_ns(e: &Value, inode: u64) -> bool {
    e["netns"]["inode"] == inode
}

/// A network namespace held only by a sleeping process (`unshare -n
/// sleep`), with a veth pair `v0`/`v1` up inside; killed on drop.
pub struct Holder {
    child: Child,
}

impl Holder {
    pub fn new() -> Holder {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn inode(&self) -> u64 {
        let link = std::fs::read_link(format!("/proc/{}/ns/net", self.pid())).unwrap();
        let s = link.to_string_lossy();
        s.trim_start_matches("net:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }

    /// `ip ARGS` inside the namespace; returns the pid of `ip` (nsenter
    /// execs it).
    pub fn ip(&self, args: &str) -> u32 {
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

    pub fn veth(&self) {
        self.ip("link add v0 type veth peer name v1");
        self.ip("link set v1 up");
        self.ip("link set v0 up");
    }

    pub fn ifindex(&self, dev: &str) -> u64 {
        let pid = self.pid().to_string();
        let out = run(
            "nsenter",
            &["-t", &pid, "-n", "ip", "-j", "link", "show", dev],
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0]["ifindex"].as_u64().unwrap()
    }

    pub fn kill(&mut self) {
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
pub struct BindMount {
    pub dir: PathBuf,
    pub name: String,
}

impl BindMount {
    pub fn new(pid: u32) -> BindMount {
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

    pub fn umount(&self) {
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
