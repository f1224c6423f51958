//! What differs per guest architecture: the QEMU system and machine, the
//! console, apt's sources, and the guest's own tools.
//!
//! An x86-64 guest runs the host's busybox and iproute2 (with the libraries
//! `ldd` lists). An arm64 guest gets Debian's arm64 `busybox-static` and
//! `iproute2` with the shared libraries of their packages, downloaded with
//! `apt-get download` and unpacked into a cached sysroot; the test binaries
//! given to it must be static (no `ldd` for a foreign architecture).

use crate::host::{self, FileLock, apt_update_once, run, say};
use crate::kernel::Arch;
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Debian 11 suites carrying the 5.10 kernels, added to apt's sources.
const BULLSEYE_SOURCES: &str = "/etc/apt/sources.list.d/tracer-bullseye.sources";
const BULLSEYE_SOURCES_TEXT: &str = "\
# Added by tracer's QEMU tests (tests/qemu/guest.rs): Debian 11's 5.10 kernels.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye bullseye-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bullseye-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// The arm64 packages of the guest's tools: busybox, and iproute2 with the
/// packages of every library `ip` links (libc6 brings the loader).
const ARM64_TOOL_PACKAGES: &[&str] = &[
    "busybox-static",
    "iproute2",
    "libc6",
    "libbpf1",
    "libelf1",
    "libmnl0",
    "libbsd0",
    "libcap2",
    "zlib1g",
    "libmd0",
];

/// Makes apt able to fetch `arch`'s guest kernels and tools, idempotently:
/// the bullseye suites (5.10 kernels) in a sources file of their own, and
/// for arm64 `dpkg --add-architecture arm64`. Runs `apt-get update` when it
/// changed anything.
pub fn ensure_apt_sources(arch: Arch) -> Result<()> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut changed = false;
    if !*done {
        let _lock = FileLock::acquire(&host::cache_dir()?.join("apt.lock"))?;
        if fs::read_to_string(BULLSEYE_SOURCES).ok().as_deref() != Some(BULLSEYE_SOURCES_TEXT) {
            say!("adding Debian 11 (bullseye) suites to apt: {BULLSEYE_SOURCES}");
            fs::write(BULLSEYE_SOURCES, BULLSEYE_SOURCES_TEXT)
                .with_context(|| format!("writing {BULLSEYE_SOURCES} (root needed)"))?;
            changed = true;
        }
        *done = true;
    }
    if arch == Arch::Aarch64 {
        let out = run(Command::new("dpkg").arg("--print-foreign-architectures"))?;
        if !String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|a| a == "arm64")
        {
            say!("running: dpkg --add-architecture arm64");
            run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
            changed = true;
        }
    }
    if changed {
        apt_update_once()?;
    }
    Ok(())
}

/// `qemu-system-*` and its machine options for `arch`.
pub fn qemu_command(arch: Arch) -> Result<Command> {
    let name = match arch {
        Arch::X86_64 => "qemu-system-x86_64",
        Arch::Aarch64 => "qemu-system-aarch64",
    };
    let path = host::which(name)
        .with_context(|| format!("{name} not found (Debian package {})", qemu_package(arch)))?;
    let mut cmd = Command::new(path);
    match arch {
        // One host thread for all vCPUs: with multi-threaded TCG the x86
        // guest kernel's int3-based self-patching during boot can race.
        Arch::X86_64 => cmd.args(["-accel", "tcg,thread=single", "-cpu", "max"]),
        Arch::Aarch64 => cmd.args(["-M", "virt", "-accel", "tcg", "-cpu", "max"]),
    };
    Ok(cmd)
}

/// The Debian package of `arch`'s QEMU system emulator.
pub fn qemu_package(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86",
        Arch::Aarch64 => "qemu-system-arm",
    }
}

/// The kernel's serial console on `arch`'s QEMU machine.
pub fn console(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "ttyS0",
        Arch::Aarch64 => "ttyAMA0",
    }
}

/// The guest's own tools for a foreign architecture.
pub struct GuestTools {
    /// Static busybox for the guest.
    pub busybox: PathBuf,
    /// iproute2's `ip` for the guest.
    pub ip: PathBuf,
    /// The sysroot's library directories, copied whole into the guest
    /// (relative paths, e.g. `lib/aarch64-linux-gnu`).
    pub lib_dirs: Vec<PathBuf>,
    /// The sysroot they are in.
    pub root: PathBuf,
}

/// Downloads and unpacks (once, cached) the arm64 guest's tools.
pub fn arm64_tools() -> Result<GuestTools> {
    ensure_apt_sources(Arch::Aarch64)?;
    let dir = host::cache_dir()?.join("sysroot-arm64");
    let root = dir.join("root");
    let _lock = FileLock::acquire(&host::cache_dir()?.join("sysroot-arm64.lock"))?;
    let stamp = dir.join(".complete");
    let want = ARM64_TOOL_PACKAGES.join(" ");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        let debs = dir.join("debs");
        fs::create_dir_all(&debs)?;
        let pkgs: Vec<String> = ARM64_TOOL_PACKAGES
            .iter()
            .map(|p| format!("{p}:arm64"))
            .collect();
        say!("downloading the arm64 guest tools: {}", pkgs.join(" "));
        let download = |pkgs: &[String]| {
            run(host::apt_command()
                .current_dir(&debs)
                .args(["-o", "APT::Sandbox::User=root", "download"])
                .args(pkgs))
        };
        if download(&pkgs).is_err() {
            apt_update_once()?;
            download(&pkgs)?;
        }
        for deb in fs::read_dir(&debs)? {
            let deb = deb?.path();
            run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        }
        fs::write(&stamp, &want)?;
    }
    let find = |cands: &[&str]| {
        cands
            .iter()
            .map(|c| root.join(c))
            .find(|p| p.is_file())
            .with_context(|| format!("none of {cands:?} in {}", root.display()))
    };
    let busybox = find(&["bin/busybox", "usr/bin/busybox"])?;
    let ip = find(&["bin/ip", "sbin/ip", "usr/bin/ip", "usr/sbin/ip"])?;
    let lib_dirs = ["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu"]
        .iter()
        .map(PathBuf::from)
        .filter(|d| root.join(d).is_dir())
        .collect();
    Ok(GuestTools {
        busybox,
        ip,
        lib_dirs,
        root,
    })
}

/// Fails unless `bin` is a statically linked executable (checked with
/// `file`): a foreign-architecture guest cannot be given `ldd`'s libraries.
pub fn require_static(bin: &Path) -> Result<()> {
    let out = run(Command::new("file").arg("-L").arg(bin))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("statically linked") || text.contains("static-pie linked") {
        Ok(())
    } else {
        bail!(
            "{} must be a static executable for a foreign-architecture guest; `file` says: {}",
            bin.display(),
            text.trim()
        )
    }
}

impl GuestTools {
    /// Copies the sysroot's library directories and the dynamic loader's
    /// links in `lib/` into the guest root `dst` (symlinks kept, glibc's
    /// gconv modules left out). Returns the guest library directories.
    pub fn install_libs(&self, dst: &Path) -> Result<Vec<String>> {
        for rel in &self.lib_dirs {
            copy_tree(&self.root.join(rel), &dst.join(rel))?;
        }
        // The loader: `lib/ld-linux-aarch64.so.1` is a link into the lib dir.
        for e in fs::read_dir(self.root.join("lib"))? {
            let e = e?;
            if e.file_type()?.is_symlink() || e.file_type()?.is_file() {
                copy_entry(&e.path(), &dst.join("lib").join(e.file_name()))?;
            }
        }
        Ok(self
            .lib_dirs
            .iter()
            .map(|d| format!("/{}", d.display()))
            .collect())
    }
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst)?;
    for e in fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let e = e?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        if e.file_type()?.is_dir() {
            if e.file_name() != "gconv" {
                copy_tree(&from, &to)?;
            }
        } else {
            copy_entry(&from, &to)?;
        }
    }
    Ok(())
}

fn copy_entry(from: &Path, to: &Path) -> Result<()> {
    if fs::symlink_metadata(to).is_ok() {
        return Ok(());
    }
    if let Some(d) = to.parent() {
        fs::create_dir_all(d)?;
    }
    if fs::symlink_metadata(from)?.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}
