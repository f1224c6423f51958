//! Harness for integration tests on this machine's kernel: uniquely named
//! network namespaces that are deleted even when a test fails, and the real
//! `tracer` binary run as a child whose `ready` line is awaited.
#![allow(dead_code)]

pub mod holder;
pub mod lab;
pub mod scenario;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

/// The tracer binary: $TRACER_BIN (set by `cargo xtask test`), else the
/// release build in $CARGO_TARGET_DIR, else in the workspace's target/.
pub fn tracer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRACER_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        );
    let p = target.join("release/tracer");
    assert!(
        p.exists(),
        "{} does not exist: run `cargo build --release` (or `cargo xtask test`)",
        p.display()
    );
    p
}

/// `tracer doctor --json`: what this kernel supports.
pub fn doctor() -> Value {
    let out = Command::new(tracer_bin())
        .args(["doctor", "--json"])
        .output()
        .expect("tracer doctor");
    assert!(
        out.status.success(),
        "doctor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("doctor JSON")
}

pub fn nlraw_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nlraw"))
}

pub fn scenario_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenario.sh")
}

/// Run a command, panicking with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace named `tracer-it-<pid>-<n>-<tag>`, deleted on drop.
pub struct Netns {
    pub name: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `tracer-it-<pid>-<n>-<tag>`, a name no other test of this run has.
pub fn unique(tag: &str) -> String {
    format!(
        "tracer-it-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        assert!(
            nix_is_root(),
            "integration tests need root (they create network namespaces and load eBPF); run them as root"
        );
        let name = unique(tag);
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }
}

impl Netns {
    /// `ip -n NAME ARGS...`, with ARGS split on whitespace.
    pub fn ip(&self, args: &str) -> String {
        let mut argv = vec!["-n", self.name.as_str()];
        argv.extend(args.split_whitespace());
        run("ip", &argv)
    }
}

impl Netns {
    /// `ip netns del NAME` now (it unmounts /run/netns/NAME); returns the
    /// pid of that `ip`.
    pub fn delete(self) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "del", &self.name])
            .spawn()
            .expect("ip netns del");
        let pid = child.id();
        let out = child.wait_with_output().expect("ip netns del");
        assert!(out.status.success(), "ip netns del {} failed", self.name);
        // Deleted: its drop must not run `ip netns del` again.
        std::mem::forget(self);
        pid
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A running `tracer watch`.
pub struct Tracer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// When each line of `lines` was read (wall clock).
    arrivals: Arc<Mutex<Vec<std::time::SystemTime>>>,
    stderr: Arc<Mutex<String>>,
    pub ready: Value,
}

impl Tracer {
    /// Start `tracer watch --json ARGS` and wait (up to 30 s) for its ready
    /// line.
    pub fn start(args: &[&str]) -> Tracer {
        Tracer::start_cmd("watch", args)
    }

    /// [`Tracer::start`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Tracer {
        Tracer::start_full("watch", args, env)
    }

    /// Start `tracer SUBCOMMAND --json ARGS` (watch, record, guard) and wait
    /// (up to 30 s) for its ready line.
    pub fn start_cmd(subcommand: &str, args: &[&str]) -> Tracer {
        Tracer::start_full(subcommand, args, &[])
    }

    fn start_full(subcommand: &str, args: &[&str], env: &[(&str, &str)]) -> Tracer {
        let mut child = Command::new(tracer_bin())
            .arg(subcommand)
            .arg("--json")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tracer");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let l = lines.clone();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let a = arrivals.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if l.lock().unwrap().is_empty() {
                    let _ = tx.send(line.clone());
                }
                a.lock().unwrap().push(std::time::SystemTime::now());
                l.lock().unwrap().push(line);
            }
        });
        let err = child.stderr.take().expect("stderr");
        let e = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                e.lock().unwrap().push_str(&line);
                e.lock().unwrap().push('\n');
            }
        });
        let first = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "tracer printed no ready line within 30 s; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let ready: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("ready line is not JSON ({e}): {first}"));
        assert_eq!(ready["kind"], "ready", "first line: {first}");
        Tracer {
            child,
            lines,
            arrivals,
            stderr,
            ready,
        }
    }

    /// Wait until some event satisfies `pred` (or panic after `timeout`).
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.events().iter().any(&pred) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no event for {what} within {timeout:?}; events:\n{}\nstderr:\n{}",
            self.lines.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap()
        );
    }

    /// When the first event matching `pred` was read from the tracer.
    pub fn arrival(&self, pred: impl Fn(&Value) -> bool) -> Option<std::time::SystemTime> {
        let i = self.events().iter().position(pred)?;
        self.arrivals.lock().unwrap().get(i).copied()
    }

    pub fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// SIGINT, wait for a clean exit, return every event.
    pub fn stop(mut self) -> Vec<Value> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("wait for tracer");
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            status.success(),
            "tracer exited with {status}; stderr:\n{}",
            self.stderr.lock().unwrap()
        );
        self.events()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory under the system's temporary directory,
/// `tracer-it-PREFIX-PID-TAG`, emptied first and removed on drop. `new`
/// leaves it to be created (a recorder creates its journal); `created`
/// makes it.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str, tag: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("tracer-it-{prefix}-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }

    pub fn created(prefix: &str, tag: &str) -> TempDir {
        let d = TempDir::new(prefix, tag);
        std::fs::create_dir_all(&d.0).unwrap();
        d
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
