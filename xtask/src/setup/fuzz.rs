//! cargo-fuzz, which builds and runs the fuzz targets of tracer/fuzz/ on
//! the nightly toolchain (`cargo xtask fuzz`, the fuzz stage of `cargo
//! xtask test`).

use super::say;
use crate::{process, workspace};
use anyhow::{Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// The release series the fuzz crate is run with here.
const VERSION_REQ: &str = "~0.13";

pub fn ensure() -> Result<()> {
    if let Some(found) = find() {
        let mut cmd = Command::new(&found);
        cmd.args(["fuzz", "--version"]);
        match process::capture(&mut cmd) {
            Ok(out) if out.status.success() => {
                let v = String::from_utf8_lossy(&out.stdout);
                say!("cargo-fuzz: present ({}, {})", found.display(), v.trim());
                return Ok(());
            }
            _ => say!("cargo-fuzz: {} does not run; reinstalling", found.display()),
        }
    } else {
        say!("cargo-fuzz: missing (not on PATH nor in ~/.cargo/bin)");
    }
    let mut install = workspace::cargo();
    install.args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--force",
        "--version",
        VERSION_REQ,
    ]);
    say!(
        "installing: {} (about a minute)",
        process::display(&install)
    );
    process::run_streamed("setup step cargo-fuzz", &mut install)?;
    match find() {
        Some(found) => say!("cargo-fuzz: installed ({})", found.display()),
        None => bail!(
            "setup step cargo-fuzz failed: `cargo install` succeeded but cargo-fuzz is not on PATH nor in ~/.cargo/bin"
        ),
    }
    Ok(())
}

/// An executable `cargo-fuzz` on PATH, else in `<cargo home>/bin`.
fn find() -> Option<PathBuf> {
    let path = workspace::child_path();
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join("cargo-fuzz"))
        .find(|p| p.is_file())
}
