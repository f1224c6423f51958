//! `cargo xtask`: the project's setup, build, test and demo commands.
//!
//! - `cargo xtask setup`: install what this kind of machine lacks (apt
//!   packages, the nightly toolchain with rust-src, bpf-linker,
//!   cargo-fuzz), idempotently.
//! - `cargo xtask build`: setup, then a release build of the workspace.
//! - `cargo xtask test`: the one test command (CI runs it through `.ci/run`).
//! - `cargo xtask fuzz [--secs N] [TARGET...]`: the fuzz targets of the
//!   parsers of outside bytes (tracer/fuzz/), N seconds each, on nightly.
//! - `cargo xtask dist`: static binaries and .deb packages for x86-64 and
//!   arm64 in target/dist/.
//! - `cargo xtask lab`: the routing-loop incident rebuilt in throw-away
//!   network namespaces (a Tailscale subnet router and a LAN host) under
//!   `tracer watch --iface`.
//! - `cargo xtask demo`: the same as `cargo xtask lab`.

mod build;
mod dist;
mod fuzz;
mod fuzz_budget;
mod lab;
mod process;
mod setup;
mod test;
mod workspace;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Setup, build, test and demo commands of the tracer workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what this machine lacks (apt packages, nightly + rust-src, bpf-linker, cargo-fuzz); idempotent.
    Setup,
    /// Setup, then `cargo build --release --workspace` (target/release/tracer with the eBPF object embedded).
    Build,
    /// Setup, then the release artefacts in target/dist/: static tracer-x86_64-linux and tracer-aarch64-linux, and their .deb packages.
    Dist,
    /// The project's test command: setup, build, unit tests, fuzz targets, integration tests (root), QEMU tests.
    Test(test::TestArgs),
    /// Run the fuzz targets (tracer/fuzz/, cargo-fuzz on nightly) for N seconds each; fails on a crash, naming its reproducer.
    Fuzz(fuzz::FuzzArgs),
    /// The demonstration: the same as `lab` (root).
    Demo(lab::LabArgs),
    /// Rebuild the lost-throw-route incident (a subnet router whose tailnet traffic loops) in throw-away network namespaces under `tracer watch --iface` (root).
    Lab(lab::LabArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run(),
        Command::Build => build::run(),
        Command::Dist => dist::run(),
        Command::Test(args) => test::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Demo(args) | Command::Lab(args) => lab::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            if lab::signal::interrupted() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
