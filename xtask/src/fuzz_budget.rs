//! `cargo xtask fuzz --cpu-secs N`: a target runs until its fuzzing
//! process has used N seconds of CPU (libFuzzer's `-max_total_time` counts
//! wall time, which a busy machine turns into much less CPU). A watcher
//! reads the CPU time of the fuzzing process (the descendant of `cargo
//! fuzz run` named after the target) from /proc and interrupts it with
//! SIGINT at the budget; libFuzzer then prints its final stats and says
//! it was interrupted, which counts as a finished run.
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};
use std::time::Duration;

/// What libFuzzer prints when SIGINT stops it (it then exits with its
/// interrupt code, 72, which `cargo fuzz` turns into a failure).
pub const INTERRUPTED: &str = "libFuzzer: run interrupted; exiting";

/// What the watcher saw: whether it interrupted the run, and the CPU
/// seconds the fuzzing process had used at its last look.
#[derive(Clone, Default)]
pub struct Watch {
    pub interrupted: Arc<AtomicBool>,
    pub cpu_secs: Arc<AtomicU64>,
}

/// Watch `target`'s fuzzing process under `root_pid` until `done`,
/// interrupting it once it has used `budget` CPU seconds.
pub fn watch(root_pid: u32, target: &str, budget: u64, done: Arc<AtomicBool>) -> Watch {
    let w = Watch::default();
    let out = w.clone();
    let comm: String = target.chars().take(15).collect();
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(2));
            let Some((pid, secs)) = fuzzer(root_pid, &comm) else {
                continue;
            };
            w.cpu_secs.store(secs, Ordering::Relaxed);
            if secs >= budget && !w.interrupted.swap(true, Ordering::Relaxed) {
                // SAFETY: kill(2) with a pid just read from /proc.
                unsafe { libc::kill(pid as i32, libc::SIGINT) };
            }
        }
    });
    out
}

/// The process named `comm` that descends from `root`, with its CPU
/// seconds (user and system).
fn fuzzer(root: u32, comm: &str) -> Option<(u32, u64)> {
    let ticks = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64;
    let procs: Vec<(u32, u32, String, u64)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state, ppid, ..., utime (14th field of
            // the line, 12th here) and stime.
            let ppid = f.get(1)?.parse().ok()?;
            let cpu = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some((pid, ppid, name.to_string(), cpu / ticks))
        })
        .collect();
    let descends = |mut pid: u32| {
        for _ in 0..16 {
            if pid == root {
                return true;
            }
            match procs.iter().find(|p| p.0 == pid) {
                Some(p) if p.1 != 0 => pid = p.1,
                _ => return false,
            }
        }
        false
    };
    procs
        .iter()
        .find(|p| p.2 == comm && descends(p.0))
        .map(|p| (p.0, p.3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy child of this process is found by name and its CPU read.
    #[test]
    fn finds_a_descendant_by_name_with_its_cpu() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let found = fuzzer(std::process::id(), "sh");
        let _ = child.kill();
        let _ = child.wait();
        let (pid, cpu) = found.expect("the spinning child");
        assert_eq!(pid, child.id());
        assert!(cpu >= 1, "{cpu}");
    }
}
