//! `cargo xtask fuzz [--secs N] [TARGET...]`: the fuzz targets of
//! tracer/fuzz/ (cargo-fuzz, libFuzzer, the nightly toolchain), each run
//! for N seconds from its committed corpus (`tracer/fuzz/corpus/<target>/`)
//! and its regressions (`tracer/fuzz/regressions/<target>/`). New inputs
//! go to a scratch corpus under the target directory
//! (`fuzz-corpus/<target>/`), never to the committed one: `cargo fuzz
//! cmin` decides what is worth keeping (README, "Fuzzing").
//!
//! Per target it prints the executions, the coverage (`cov:` edges and
//! `ft:` features, as libFuzzer counts them) and the corpus size; a crash
//! fails the command after every target ran, naming the reproducer that
//! libFuzzer wrote and the command that replays it.

use crate::{fuzz_budget, process, setup, workspace};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::time::Instant;

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds each target runs (libFuzzer's -max_total_time).
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Instead of --secs: CPU seconds each target's fuzzing process uses
    /// (a busy machine gives a wall-time run much less CPU).
    #[arg(long, conflicts_with = "secs")]
    pub cpu_secs: Option<u64>,
    /// The targets to run (tracer/fuzz/fuzz_targets/<TARGET>.rs); all without one.
    pub targets: Vec<String>,
}

/// The fuzz crate, relative to the workspace root.
pub const FUZZ_DIR: &str = "tracer/fuzz";
/// A unit slower than this is a hang (libFuzzer's -timeout, seconds).
const UNIT_TIMEOUT_SECS: u64 = 20;
/// Options of every `cargo fuzz build` and `run` (the same, or `run`
/// rebuilds). cargo-fuzz's default build is optimised with debug
/// assertions and overflow checks, which an offset computed from an
/// outside length must not overflow: its `--release` would turn both off,
/// so it is not given. 16 codegen units: cargo-fuzz's 1 makes the
/// instrumented tracer take many minutes to build on two cores.
const BUILD_ARGS: &[&str] = &["--codegen-units", "16"];
/// Lines of a failing run's output repeated in the error.
const TAIL_LINES: usize = 60;

pub fn run(args: &FuzzArgs) -> Result<()> {
    if args.secs == 0 || args.cpu_secs == Some(0) {
        // libFuzzer reads -max_total_time=0 as "no limit".
        bail!("--secs must be at least 1");
    }
    setup::run()?;
    let all = targets()?;
    let chosen = if args.targets.is_empty() {
        all
    } else {
        for t in &args.targets {
            if !all.contains(t) {
                bail!("no fuzz target {t:?}; the targets: {}", all.join(", "));
            }
        }
        args.targets.clone()
    };
    run_targets(&chosen, Budget::of(args))
}

/// How long each target runs.
#[derive(Clone, Copy)]
pub enum Budget {
    /// Wall seconds (libFuzzer's -max_total_time).
    Secs(u64),
    /// CPU seconds of the fuzzing process (`fuzz_budget`).
    CpuSecs(u64),
}

impl Budget {
    fn of(args: &FuzzArgs) -> Budget {
        args.cpu_secs
            .map_or(Budget::Secs(args.secs), Budget::CpuSecs)
    }

    /// libFuzzer's -max_total_time: the wall time, or a bound far above a
    /// CPU budget (the watcher stops the run before).
    fn wall(self) -> u64 {
        match self {
            Budget::Secs(s) => s,
            Budget::CpuSecs(c) => c.saturating_mul(50),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Secs(s) => write!(f, "{s} s"),
            Budget::CpuSecs(c) => write!(f, "{c} CPU s"),
        }
    }
}

/// Every target: the files of tracer/fuzz/fuzz_targets/, sorted.
pub fn targets() -> Result<Vec<String>> {
    let dir = workspace::root().join(FUZZ_DIR).join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    Ok(names)
}

/// `rustup run nightly cargo fuzz ARGS`, from the workspace root. The
/// variables the outer cargo set for the stable toolchain are dropped, so
/// that cargo-fuzz's cargo is nightly's.
fn nightly_cargo_fuzz(args: &[&str]) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo", "fuzz"])
        .args(args)
        .current_dir(workspace::root())
        .env("PATH", workspace::child_path());
    for var in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "RUSTC_WRAPPER",
    ] {
        c.env_remove(var);
    }
    c
}

/// `cargo fuzz SUBCOMMAND --fuzz-dir tracer/fuzz ...` on nightly.
fn cargo_fuzz(subcommand: &str) -> Command {
    nightly_cargo_fuzz(&[subcommand, "--fuzz-dir", FUZZ_DIR])
}

/// Fails, saying what to do, unless `rustup run nightly cargo fuzz` runs:
/// the fuzz stage never passes by running nothing.
fn preflight() -> Result<()> {
    let mut version = nightly_cargo_fuzz(&["--version"]);
    let need = "the fuzz targets need rustup's nightly toolchain and cargo-fuzz; \
                `cargo xtask setup` installs both";
    match process::capture(&mut version) {
        Ok(out) if out.status.success() => {
            let v = String::from_utf8_lossy(&out.stdout);
            println!("fuzz: {} (nightly toolchain)", v.trim());
            Ok(())
        }
        Ok(out) => bail!(
            "fuzz: `{}` failed ({}): {}\n{need}",
            process::display(&version),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!("fuzz: {e:#}\n{need}"),
    }
}

/// Builds every target, then runs each for `budget`.
pub fn run_targets(targets: &[String], budget: Budget) -> Result<()> {
    if targets.is_empty() {
        bail!("fuzz: no target in {FUZZ_DIR}/fuzz_targets/");
    }
    preflight()?;
    let meta = workspace::metadata()?;
    let scratch = meta.target_directory.as_std_path().join("fuzz-corpus");

    let mut build = cargo_fuzz("build");
    build.args(BUILD_ARGS);
    println!("fuzz: {}", process::display(&build));
    process::run_streamed("building the fuzz targets", &mut build)?;

    let mut failed = Vec::new();
    for t in targets {
        match run_one(t, budget, &scratch)? {
            Outcome::Passed(stats) => println!("fuzz: {t}: {stats}"),
            Outcome::Crashed(report) => {
                eprintln!("fuzz: {t}: FAILED\n{report}");
                failed.push(t.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz: {} of {} target(s) failed: {} (the reproducers are named above)",
            failed.len(),
            targets.len(),
            failed.join(", ")
        );
    }
    println!("fuzz: {} target(s), {budget} each, no crash", targets.len());
    Ok(())
}

enum Outcome {
    Passed(Stats),
    Crashed(String),
}

fn run_one(target: &str, budget: Budget, scratch: &Path) -> Result<Outcome> {
    let root = workspace::root().join(FUZZ_DIR);
    let work = scratch.join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    // New units go to the first directory; the others are read.
    let mut dirs: Vec<PathBuf> = vec![work];
    for kind in ["corpus", "regressions"] {
        let d = root.join(kind).join(target);
        if d.is_dir() {
            dirs.push(d);
        }
    }
    let mut cmd = cargo_fuzz("run");
    cmd.args(BUILD_ARGS)
        .arg(target)
        .args(&dirs)
        .arg("--")
        .arg(format!("-max_total_time={}", budget.wall()))
        .arg(format!("-timeout={UNIT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1");
    println!("\nfuzz: {target}: {}", process::display(&cmd));
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{}`", process::display(&cmd)))?;
    let done = Arc::new(AtomicBool::new(false));
    let watch = match budget {
        Budget::CpuSecs(c) => Some(fuzz_budget::watch(child.id(), target, c, done.clone())),
        Budget::Secs(_) => None,
    };
    // libFuzzer writes to stderr; the target's own output is stdout.
    let stdout = child.stdout.take().context("child stdout")?;
    let out_thread = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().context("child stderr")?)
        .lines()
        .map_while(Result::ok)
    {
        if shows_progress(&line) {
            eprintln!("{line}");
        }
        lines.push(line);
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    done.store(true, Ordering::Relaxed);
    lines.extend(out_thread.join().unwrap_or_default());
    let mut stats = Stats::parse(&lines);
    stats.secs = t0.elapsed().as_secs_f64();
    stats.cpu_secs = watch.as_ref().map(|w| w.cpu_secs.load(Ordering::Relaxed));
    // Stopped by the watcher at its CPU budget: a finished run (cargo
    // fuzz exits 1 on libFuzzer's interrupt exit, so its words count).
    let budget_spent = watch
        .as_ref()
        .is_some_and(|w| w.interrupted.load(Ordering::Relaxed))
        && lines.iter().any(|l| l.contains(fuzz_budget::INTERRUPTED));
    if status.success() || budget_spent {
        if stats.runs.is_some_and(|n| n > 0) {
            return Ok(Outcome::Passed(stats));
        }
        // A run that read no input tested nothing: as loud as a crash.
        let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        return Ok(Outcome::Crashed(format!(
            "it exited successfully but executed no input ({stats})\n--- its output ---\n{}",
            tail.join("\n")
        )));
    }
    let mut report = match panic_message(&lines) {
        Some(p) => format!("--- the panic ---\n{p}\n"),
        None => {
            let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
            format!(
                "--- last {} line(s) of its output ---\n{}\n",
                tail.len(),
                tail.join("\n")
            )
        }
    };
    let opts = BUILD_ARGS.join(" ");
    match reproducer(&lines) {
        Some(r) => report.push_str(&format!(
            "reproducer: {r}\n  replay: rustup run nightly cargo fuzz run --fuzz-dir {FUZZ_DIR} {opts} {target} {r}\n  \
             minimise: rustup run nightly cargo fuzz tmin --fuzz-dir {FUZZ_DIR} {opts} {target} {r}\n  \
             once fixed, keep it: {FUZZ_DIR}/regressions/{target}/ (the unit tests replay it)"
        )),
        None => report.push_str(&format!(
            "no reproducer was written ({status}): the build or libFuzzer itself failed"
        )),
    }
    Ok(Outcome::Crashed(report))
}

/// libFuzzer's lines worth showing as the run goes: start, the periodic
/// pulses, the end, and anything about a crash.
fn shows_progress(line: &str) -> bool {
    line.contains("INITED")
        || line.contains("DONE")
        || line.contains(" pulse ")
        || line.starts_with("INFO: Seed")
        || line.contains("ERROR")
        || line.contains("panicked")
        || line.contains("Test unit written")
}

/// The target's panic: from "panicked at" to the backtrace (the
/// assertion and its values), without the backtrace.
fn panic_message(lines: &[String]) -> Option<String> {
    let start = lines.iter().position(|l| l.contains("panicked at"))?;
    let block: Vec<&str> = lines[start..]
        .iter()
        .map(String::as_str)
        .take_while(|l| !l.starts_with("stack backtrace:") && !l.starts_with("=="))
        .take(TAIL_LINES)
        .collect();
    Some(block.join("\n"))
}

/// The file libFuzzer wrote the crashing input to.
fn reproducer(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|l| {
        let (_, path) = l.split_once("Test unit written to ")?;
        Some(path.trim().to_string())
    })
}

/// What a run did, from libFuzzer's last status line and final stats.
#[derive(Debug, Default, PartialEq)]
struct Stats {
    runs: Option<u64>,
    cov: Option<u64>,
    ft: Option<u64>,
    /// Units and size, as libFuzzer prints them ("57/12Kb").
    corpus: Option<String>,
    new_units: Option<u64>,
    secs: f64,
    /// The fuzzing process's CPU seconds, when a CPU budget was watched.
    cpu_secs: Option<u64>,
}

impl Stats {
    fn parse(lines: &[String]) -> Stats {
        let mut s = Stats::default();
        let field = |line: &str, key: &str| -> Option<String> {
            let mut words = line.split_whitespace();
            words.find(|w| *w == key)?;
            words.next().map(String::from)
        };
        if let Some(last) = lines
            .iter()
            .rev()
            .find(|l| l.starts_with('#') && l.contains(" cov: "))
        {
            s.cov = field(last, "cov:").and_then(|v| v.parse().ok());
            s.ft = field(last, "ft:").and_then(|v| v.parse().ok());
            s.corpus = field(last, "corp:");
            s.runs = last
                .strip_prefix('#')
                .and_then(|l| l.split_whitespace().next())
                .and_then(|n| n.parse().ok());
        }
        for l in lines {
            if let Some(v) = l.strip_prefix("stat::number_of_executed_units:") {
                s.runs = v.trim().parse().ok().or(s.runs);
            }
            if let Some(v) = l.strip_prefix("stat::new_units_added:") {
                s.new_units = v.trim().parse().ok();
            }
        }
        s
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        write!(
            f,
            "{} executions in {:.0} s{}, cov {}, ft {}, corpus {} ({} new)",
            n(self.runs),
            self.secs,
            self.cpu_secs
                .map(|c| format!(" ({c} CPU s)"))
                .unwrap_or_default(),
            n(self.cov),
            n(self.ft),
            self.corpus.as_deref().unwrap_or("?"),
            n(self.new_units),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn the_last_status_line_and_the_final_stats_are_read() {
        let out = lines(
            "INFO: Seed: 1234\n\
             #2\tINITED cov: 1500 ft: 3000 corp: 50/10Kb exec/s: 0 rss: 60Mb\n\
             #1024\tpulse  cov: 1600 ft: 3100 corp: 55/11Kb lim: 4096 exec/s: 512 rss: 70Mb\n\
             #70000\tDONE   cov: 1654 ft: 3321 corp: 57/12Kb lim: 4096 exec/s: 4666 rss: 80Mb\n\
             Done 70000 runs in 15 second(s)\n\
             stat::number_of_executed_units: 70001\n\
             stat::new_units_added: 7\n",
        );
        let s = Stats::parse(&out);
        assert_eq!(s.cov, Some(1654));
        assert_eq!(s.ft, Some(3321));
        assert_eq!(s.corpus.as_deref(), Some("57/12Kb"));
        assert_eq!(s.runs, Some(70001));
        assert_eq!(s.new_units, Some(7));
        assert_eq!(reproducer(&out), None);
    }

    #[test]
    fn a_crash_names_its_reproducer() {
        let out = lines(
            "thread '<unnamed>' panicked at tracer/src/fuzzing/text.rs:1:1:\n\
             ==1== ERROR: libFuzzer: deadly signal\n\
             artifact_prefix='/w/tracer/fuzz/artifacts/iface/'; Test unit written to /w/tracer/fuzz/artifacts/iface/crash-da39a3ee\n",
        );
        assert_eq!(
            reproducer(&out).as_deref(),
            Some("/w/tracer/fuzz/artifacts/iface/crash-da39a3ee")
        );
        assert_eq!(
            panic_message(&out).as_deref(),
            Some("thread '<unnamed>' panicked at tracer/src/fuzzing/text.rs:1:1:")
        );
        assert!(out.iter().all(|l| shows_progress(l)));
    }
}
