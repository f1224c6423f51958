//! Where things are: the workspace root, cargo, the release `tracer`
//! binary, and the PATH that child processes get.

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Is this process running as root (effective uid 0)?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `$CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> Option<PathBuf> {
    match std::env::var_os("CARGO_HOME") {
        Some(h) if !h.is_empty() => Some(PathBuf::from(h)),
        _ => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cargo")),
    }
}

/// `$PATH` with `<cargo home>/bin` appended when it is not already there,
/// so that `bpf-linker` installed by `cargo install` is found by the eBPF build.
pub fn child_path() -> OsString {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    if let Some(bin) = cargo_home().map(|h| h.join("bin"))
        && !dirs.contains(&bin)
    {
        dirs.push(bin);
    }
    std::env::join_paths(dirs).unwrap_or(current)
}

/// A `cargo` command (the cargo running us, if known) run from the
/// workspace root with [`child_path`] as PATH.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(program);
    c.current_dir(root()).env("PATH", child_path());
    c
}

/// The workspace's `cargo metadata` (no dependencies): packages, targets and
/// the target directory (honouring `CARGO_TARGET_DIR` and cargo config).
pub fn metadata() -> Result<cargo_metadata::Metadata> {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    cargo_metadata::MetadataCommand::new()
        .cargo_path(program)
        .manifest_path(root().join("Cargo.toml"))
        .no_deps()
        .exec()
        .context("running `cargo metadata --no-deps`")
}

/// Absolute path of the release `tracer` binary.
pub fn tracer_bin(meta: &cargo_metadata::Metadata) -> PathBuf {
    meta.target_directory
        .as_std_path()
        .join("release")
        .join("tracer")
}

/// Finds a system tool by name on PATH, then in the usual sbin/bin dirs
/// (root's PATH under some CI runners lacks /usr/sbin).
pub fn system_tool(name: &str) -> Option<PathBuf> {
    which::which(name).ok().or_else(|| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    })
}
