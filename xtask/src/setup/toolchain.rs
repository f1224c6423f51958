//! The `nightly` toolchain and its `rust-src` component, which aya-build
//! needs to build the eBPF crate with `-Z build-std=core`.

use super::say;
use crate::{process, workspace};
use anyhow::{Result, bail};
use std::path::PathBuf;
use std::process::Command;

const TOOLCHAIN: &str = "nightly";
const COMPONENT: &str = "rust-src";
/// Components of the default toolchain that the lint stage runs.
const LINT_COMPONENTS: &[&str] = &["clippy", "rustfmt"];
/// Rust targets of the static release binaries (`cargo xtask dist`, the
/// arm64 QEMU tests), for the default (stable) toolchain.
pub const TARGETS: &[&str] = &["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

pub fn ensure() -> Result<()> {
    let rustup = rustup()?;

    let mut list = Command::new(&rustup);
    list.args(["toolchain", "list"]);
    let out = process::capture(&mut list)?;
    process::check_output("setup step nightly toolchain", &list, &out)?;
    if has_toolchain(&String::from_utf8_lossy(&out.stdout), TOOLCHAIN) {
        say!("rust toolchain {TOOLCHAIN}: present");
    } else {
        say!("rust toolchain {TOOLCHAIN}: missing, installing with rustup (profile minimal)");
        let mut install = Command::new(&rustup);
        install.args(["toolchain", "install", TOOLCHAIN, "--profile", "minimal"]);
        process::run_streamed("setup step nightly toolchain", &mut install)?;
    }

    let mut components = Command::new(&rustup);
    components.args(["component", "list", "--toolchain", TOOLCHAIN, "--installed"]);
    let out = process::capture(&mut components)?;
    process::check_output("setup step rust-src", &components, &out)?;
    if has_component(&String::from_utf8_lossy(&out.stdout), COMPONENT) {
        say!("{COMPONENT} for {TOOLCHAIN}: present");
    } else {
        say!(
            "{COMPONENT} for {TOOLCHAIN}: missing, installing: rustup component add {COMPONENT} --toolchain {TOOLCHAIN}"
        );
        let mut add = Command::new(&rustup);
        add.args(["component", "add", COMPONENT, "--toolchain", TOOLCHAIN]);
        process::run_streamed("setup step rust-src", &mut add)?;
    }

    // The lint stage of `cargo xtask test`.
    let mut components = Command::new(&rustup);
    components.args(["component", "list", "--installed"]);
    let out = process::capture(&mut components)?;
    process::check_output("setup step clippy, rustfmt", &components, &out)?;
    let installed = String::from_utf8_lossy(&out.stdout).into_owned();
    for component in LINT_COMPONENTS {
        let present = installed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .any(|c| c == *component || c.starts_with(&format!("{component}-")));
        if present {
            say!("{component}: present");
        } else {
            say!("{component}: missing, installing: rustup component add {component}");
            let mut add = Command::new(&rustup);
            add.args(["component", "add", component]);
            process::run_streamed("setup step clippy, rustfmt", &mut add)?;
        }
    }

    let mut targets = Command::new(&rustup);
    targets.args(["target", "list", "--installed"]);
    let out = process::capture(&mut targets)?;
    process::check_output("setup step rust targets", &targets, &out)?;
    let installed = String::from_utf8_lossy(&out.stdout).into_owned();
    for target in TARGETS {
        if has_component(&installed, target) {
            say!("rust target {target}: present");
        } else {
            say!("rust target {target}: missing, installing: rustup target add {target}");
            let mut add = Command::new(&rustup);
            add.args(["target", "add", target]);
            process::run_streamed("setup step rust targets", &mut add)?;
        }
    }
    Ok(())
}

/// `rustup` on PATH or in `<cargo home>/bin`.
fn rustup() -> Result<PathBuf> {
    if let Ok(p) = which::which("rustup") {
        return Ok(p);
    }
    if let Some(p) = workspace::cargo_home().map(|h| h.join("bin").join("rustup"))
        && p.is_file()
    {
        return Ok(p);
    }
    bail!(
        "setup step nightly toolchain failed: rustup not found on PATH or in ~/.cargo/bin; \
         the eBPF build needs rustup's nightly toolchain (install rustup from https://rustup.rs)"
    )
}

/// Does `rustup toolchain list` output name the channel `name` (e.g.
/// `nightly-x86_64-unknown-linux-gnu (default)`)? A dated toolchain such as
/// `nightly-2026-05-19-x86_64-...` does not count: `rustup run nightly`
/// needs the undated channel.
pub fn has_toolchain(list: &str, name: &str) -> bool {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .any(|t| {
            t == name
                || t.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
}

/// Does `rustup component list --installed` output list `name` (e.g.
/// `rust-src`, which has no target suffix)?
pub fn has_component(list: &str, name: &str) -> bool {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .any(|t| t == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchain_list_parsing() {
        let here = "stable-x86_64-unknown-linux-gnu (active, default)\nnightly-x86_64-unknown-linux-gnu\n1.95.0-x86_64-unknown-linux-gnu\n";
        assert!(has_toolchain(here, "nightly"));
        assert!(has_toolchain(
            "nightly-x86_64-unknown-linux-gnu (default)\n",
            "nightly"
        ));
        assert!(!has_toolchain(
            "stable-x86_64-unknown-linux-gnu (default)\n",
            "nightly"
        ));
        assert!(!has_toolchain(
            "nightly-2026-05-19-x86_64-unknown-linux-gnu\n",
            "nightly"
        ));
        assert!(!has_toolchain("no installed toolchains\n", "nightly"));
        assert!(!has_toolchain("", "nightly"));
    }

    #[test]
    fn component_list_parsing() {
        let here = "cargo-x86_64-unknown-linux-gnu\nrust-src\nrustc-x86_64-unknown-linux-gnu\n";
        assert!(has_component(here, "rust-src"));
        assert!(has_component("rust-src (installed)\n", "rust-src"));
        assert!(!has_component(
            "cargo-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-linux-gnu\n",
            "rust-src"
        ));
        assert!(!has_component("rust-src-extra\n", "rust-src"));
    }
}
