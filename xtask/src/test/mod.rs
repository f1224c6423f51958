//! `cargo xtask test`: the project's one test command. Stages, each
//! announced, stopping at the first failure: setup, release build, unit
//! tests, every fuzz target for a short fixed time, then every integration
//! test target of tests/Cargo.toml (`watch` first, `qemu*` last).
//! Integration tests need root and are never skipped silently; only
//! `--skip-qemu` (local quick runs) skips the QEMU ones.

mod targets;

use crate::{build, dist, fuzz, process, setup, workspace};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip the QEMU VM test targets (qemu*) for a quick local run. CI never passes this.
    #[arg(long)]
    pub skip_qemu: bool,
}

const UNIT_ARGS: &[&str] = &[
    "test",
    "--release",
    "--workspace",
    "--exclude",
    "tracer-ebpf",
    "--bins",
    "--lib",
];

/// Seconds each fuzz target runs in the fuzz stage: nine targets, about
/// 1.5 min, plus the fuzz build (1.5 min after a change to the tracer, on
/// two cores), so that the stage stays near three minutes. The long
/// campaigns are `cargo xtask fuzz --secs N` (README, "Fuzzing").
const FUZZ_SECS: u64 = 8;

enum Stage {
    Setup,
    Build,
    Lint,
    Dist,
    Unit,
    Fuzz,
    Integration(String),
}

impl Stage {
    fn name(&self) -> String {
        match self {
            Stage::Setup => "setup".into(),
            Stage::Build => "release build".into(),
            Stage::Lint => "formatting and clippy (all targets, warnings are errors)".into(),
            Stage::Dist => "release artefacts (cargo xtask dist)".into(),
            Stage::Unit => "unit tests".into(),
            Stage::Fuzz => format!("fuzz targets ({FUZZ_SECS} s each, cargo xtask fuzz)"),
            Stage::Integration(t) if targets::is_qemu(t) => format!("QEMU tests: {t}"),
            Stage::Integration(t) => format!("integration tests: {t}"),
        }
    }
}

pub fn run(args: &TestArgs) -> Result<()> {
    let meta = workspace::metadata()?;
    let tracer = workspace::tracer_bin(&meta);
    let all = targets::listed(&meta)?;
    let skipped: Vec<String> = all
        .iter()
        .filter(|t| args.skip_qemu && targets::is_qemu(t))
        .cloned()
        .collect();
    warn_held_back();

    let mut stages = vec![
        Stage::Setup,
        Stage::Build,
        Stage::Lint,
        Stage::Unit,
        Stage::Fuzz,
        Stage::Dist,
    ];
    stages.extend(
        all.iter()
            .filter(|t| !skipped.contains(t) && !targets::held_back(t))
            .cloned()
            .map(Stage::Integration),
    );
    if args.skip_qemu {
        warn_skipped(&skipped);
    }

    let total = stages.len();
    let mut passed = 0;
    for (i, stage) in stages.iter().enumerate() {
        println!("\n==> xtask test [{}/{total}]: {}", i + 1, stage.name());
        let t0 = Instant::now();
        match run_stage(stage, &tracer) {
            Ok(()) => {
                passed += 1;
                println!(
                    "==> xtask test: {} passed in {:.1}s",
                    stage.name(),
                    t0.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                eprintln!(
                    "\n==> xtask test: {} FAILED after {:.1}s:\n{e:#}",
                    stage.name(),
                    t0.elapsed().as_secs_f64()
                );
                let not_run = total - i - 1;
                println!(
                    "\nxtask test: {passed} stages passed, 1 failed ({}), {not_run} not run",
                    stage.name()
                );
                if args.skip_qemu {
                    warn_skipped(&skipped);
                }
                bail!("xtask test: stage \"{}\" failed", stage.name());
            }
        }
    }
    if args.skip_qemu {
        warn_skipped(&skipped);
    }
    let note = if args.skip_qemu {
        " (QEMU tests SKIPPED by --skip-qemu)"
    } else {
        ""
    };
    println!("\nxtask test: {passed} stages passed, 0 failed{note}");
    Ok(())
}

fn warn_skipped(skipped: &[String]) {
    let what = if skipped.is_empty() {
        "(no qemu* targets listed)".to_string()
    } else {
        skipped.join(", ")
    };
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! --skip-qemu: QEMU tests SKIPPED: {what}");
    eprintln!("!!! This is NOT a full test run; CI runs them (`cargo xtask test`).");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
}

fn warn_held_back() {
    for (name, why) in targets::HELD_BACK {
        eprintln!("\n!!! not run: integration test target `{name}`: {why}");
    }
}

fn run_stage(stage: &Stage, tracer: &Path) -> Result<()> {
    match stage {
        Stage::Setup => setup::run(),
        Stage::Build => build::release_build(),
        Stage::Lint => lint(),
        Stage::Dist => dist::build(),
        Stage::Unit => cargo_test(UNIT_ARGS, &[], tracer, "unit tests"),
        Stage::Fuzz => fuzz::run_targets(&fuzz::targets()?, fuzz::Budget::Secs(FUZZ_SECS)),
        Stage::Integration(target) => {
            if !workspace::is_root() {
                bail!(
                    "integration tests `{target}` need root (they load eBPF programs and create network \
                     namespaces) and are never skipped: run the test command as root, e.g.\n  \
                     sudo -E env \"PATH=$PATH\" cargo xtask test"
                );
            }
            if !tracer.is_file() {
                bail!(
                    "{} does not exist (the release build stage should have produced it)",
                    tracer.display()
                );
            }
            let mut harness = vec!["--test-threads=1"];
            if targets::is_qemu(target) {
                harness.push("--nocapture");
            }
            let args = [
                "test",
                "--release",
                "-p",
                targets::PACKAGE,
                "--test",
                target.as_str(),
            ];
            cargo_test(&args, &harness, tracer, &stage.name())
        }
    }
}

/// `cargo <args> -- <harness>` with `TRACER_BIN` exported.
fn cargo_test(args: &[&str], harness: &[&str], tracer: &Path, step: &str) -> Result<()> {
    let mut cmd = workspace::cargo();
    cmd.args(args);
    if !harness.is_empty() {
        cmd.arg("--").args(harness);
    }
    cmd.env("TRACER_BIN", PathBuf::from(tracer));
    println!("test: {}", process::display(&cmd));
    process::run_streamed(step, &mut cmd)
}

/// `cargo fmt --check` and `cargo clippy --all-targets -D warnings` on the
/// userspace crates (the eBPF crate builds for another target).
fn lint() -> Result<()> {
    let mut fmt = workspace::cargo();
    fmt.args(["fmt", "--all", "--check"]);
    println!("lint: {}", process::display(&fmt));
    process::run_streamed("cargo fmt --check", &mut fmt)?;
    let mut clippy = workspace::cargo();
    clippy.args([
        "clippy",
        "--release",
        "--workspace",
        "--exclude",
        "tracer-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    println!("lint: {}", process::display(&clippy));
    process::run_streamed("cargo clippy", &mut clippy)
}
