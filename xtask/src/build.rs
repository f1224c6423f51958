//! `cargo xtask build`: setup, then a release build of the host workspace
//! (target/release/tracer, with the eBPF object embedded by tracer/build.rs),
//! and the static aarch64 tracer and nlraw for the arm64 QEMU tests.

use crate::{process, setup, workspace};
use anyhow::{Result, bail};

/// Host build arguments: the whole workspace except the eBPF crate, which
/// only builds for bpfel-unknown-none (aya-build builds it from tracer/build.rs).
pub const BUILD_ARGS: &[&str] = &[
    "build",
    "--release",
    "--workspace",
    "--exclude",
    "tracer-ebpf",
];

/// The arm64 binaries the arm64 QEMU tests boot: static (glibc, see
/// .cargo/config.toml), cross-linked with aarch64-linux-gnu-gcc.
pub const AARCH64_ARGS: &[&str] = &[
    "build",
    "--release",
    "--target",
    "aarch64-unknown-linux-gnu",
    "-p",
    "tracer",
    "-p",
    "integration-tests",
    "--bin",
    "tracer",
    "--bin",
    "nlraw",
];

pub fn run() -> Result<()> {
    setup::run()?;
    release_build()
}

/// `cargo build --release --workspace` (without the eBPF crate); checks that
/// the tracer binary exists afterwards.
pub fn release_build() -> Result<()> {
    let mut cmd = workspace::cargo();
    cmd.args(BUILD_ARGS);
    println!("build: {}", process::display(&cmd));
    process::run_streamed("build", &mut cmd)?;
    let bin = workspace::tracer_bin(&workspace::metadata()?);
    if !bin.is_file() {
        bail!(
            "build: `cargo build` succeeded but {} does not exist",
            bin.display()
        );
    }
    println!("build: {} is ready", bin.display());
    let mut cmd = workspace::cargo();
    cmd.args(AARCH64_ARGS);
    println!("build: {}", process::display(&cmd));
    process::run_streamed("build (aarch64)", &mut cmd)?;
    Ok(())
}
