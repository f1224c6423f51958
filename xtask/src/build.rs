//! `cargo xtask build`: setup, then a release build of the host workspace
//! (target/release/tracer, with the eBPF object embedded by tracer/build.rs).

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
    Ok(())
}
