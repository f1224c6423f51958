//! bpf-linker, built against Debian's LLVM 22 (`llvm-22-dev`).
//!
//! `/usr/bin/llvm-config` is LLVM 14 on these machines, so the build must be
//! pointed at LLVM 22 explicitly (`LLVM_PREFIX` and PATH); without that it
//! fails to link (`-lLLVM` not found).

use super::say;
use crate::{process, workspace};
use anyhow::{Result, bail};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// The release series verified with LLVM 22 and Rust 1.95 here.
const VERSION_REQ: &str = "~0.13";

pub fn ensure() -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = workspace::cargo_home().map(|h| h.join("bin"));
    let mut force = false;
    if let Some(found) = find(&path, cargo_bin.as_deref()) {
        match version(&found) {
            Ok(v) => {
                let note = if on_path(&path, &found) {
                    ""
                } else {
                    "; not on PATH, xtask adds its directory for cargo"
                };
                say!("bpf-linker: present ({}, {v}{note})", found.display());
                return Ok(());
            }
            Err(why) => {
                say!(
                    "bpf-linker: {} does not run ({why}); reinstalling",
                    found.display()
                );
                force = true;
            }
        }
    } else {
        say!("bpf-linker: missing (not on PATH nor in ~/.cargo/bin)");
    }

    let llvm_config = Path::new(LLVM_PREFIX).join("bin/llvm-config");
    if !llvm_config.is_file() {
        bail!(
            "setup step bpf-linker failed: {} not found (is llvm-22-dev installed?)",
            llvm_config.display()
        );
    }
    let mut llvm_path = OsString::from(format!("{LLVM_PREFIX}/bin:"));
    llvm_path.push(workspace::child_path());
    let mut install = workspace::cargo();
    install
        .args([
            "install",
            "bpf-linker",
            "--version",
            VERSION_REQ,
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("PATH", llvm_path);
    if force {
        install.arg("--force");
    }
    say!(
        "installing: PATH={LLVM_PREFIX}/bin:$PATH {} (about 2 minutes)",
        process::display(&install)
    );
    process::run_streamed("setup step bpf-linker", &mut install)?;

    let path = workspace::child_path();
    match find(&path, cargo_bin.as_deref()) {
        Some(found) => say!("bpf-linker: installed ({})", found.display()),
        None => bail!(
            "setup step bpf-linker failed: `cargo install` succeeded but bpf-linker is not on PATH nor in ~/.cargo/bin"
        ),
    }
    Ok(())
}

/// Finds an executable `bpf-linker` in the directories of `path`, then in `cargo_bin`.
pub fn find(path: &OsStr, cargo_bin: Option<&Path>) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|d| !d.as_os_str().is_empty())
        .chain(cargo_bin.map(Path::to_path_buf))
        .map(|d| d.join("bpf-linker"))
        .find(|p| is_executable(p))
}

fn on_path(path: &OsStr, file: &Path) -> bool {
    file.parent()
        .is_some_and(|dir| std::env::split_paths(path).any(|d| d == dir))
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `bpf-linker --version`, first line.
fn version(bin: &Path) -> Result<String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--version");
    let out = process::capture(&mut cmd)?;
    process::check_output("bpf-linker --version", &cmd, &out)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-linker-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn touch(dir: &Path, mode: u32) -> PathBuf {
        let f = dir.join("bpf-linker");
        fs::write(&f, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    #[test]
    fn finds_on_fake_path_then_in_cargo_bin() {
        let root = scratch("find");
        let (a, b, cargo_bin) = (root.join("a"), root.join("b"), root.join("cargo-bin"));
        for d in [&a, &b, &cargo_bin] {
            fs::create_dir_all(d).unwrap();
        }
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find(&path, Some(&cargo_bin)), None);
        let in_cargo = touch(&cargo_bin, 0o755);
        assert_eq!(find(&path, Some(&cargo_bin)), Some(in_cargo.clone()));
        assert!(!on_path(&path, &in_cargo));
        touch(&a, 0o644); // not executable: ignored
        assert_eq!(find(&path, Some(&cargo_bin)), Some(in_cargo));
        let in_b = touch(&b, 0o755);
        assert_eq!(find(&path, Some(&cargo_bin)), Some(in_b.clone()));
        assert!(on_path(&path, &in_b));
        assert_eq!(find(OsStr::new(""), None), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
