//! Helpers shared by tests: temporary directories, network namespaces.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A uniquely named directory under the system temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("tracer-test-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create test directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network namespace of its own (`tracer-unit-LABEL-PID`), deleted on
/// drop; for the tests that need root.
pub struct Netns(String);

impl Netns {
    pub fn new(label: &str) -> Netns {
        let name = format!("tracer-unit-{label}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        ip(&["netns", "add", &name]);
        Netns(name)
    }

    /// `ip -n NAME ARGS` (split at whitespace); panics when it fails.
    pub fn ip(&self, args: &str) {
        let mut a = vec!["-n", self.0.as_str()];
        a.extend(args.split_whitespace());
        ip(&a);
    }

    pub fn file(&self) -> std::fs::File {
        crate::nsfs::open_named(&self.0).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the tests run as root; says why a test is skipped when not.
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: needs root (a network namespace)");
    }
    root
}
