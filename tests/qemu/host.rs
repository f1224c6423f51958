//! Host side plumbing: required Debian packages, apt, the cache directory,
//! file locks and running commands with useful error messages.

use anyhow::{Context, Result, bail};
use std::fs::{self, File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

/// Debian packages the runner needs on the host.
///
/// `dpkg-deb`, `ldd` and `apt-get` come from essential/required packages and
/// are not listed. `busybox-static` provides the guest's shell and applets and
/// also the host-side `depmod`/`xzcat` used to prepare kernel modules.
/// `qemu-system-arm` and `file` serve the arm64 guests.
pub const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-arm",
    "busybox-static",
    "cpio",
    "iproute2",
    "file",
];

/// Where to look for the host's iproute2 `ip` (never busybox's applet).
const IP_CANDIDATES: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// Prints a progress line of the runner (captured by the test harness unless
/// `--nocapture` is given, and then shown with a failing test's output).
macro_rules! say {
    ($($arg:tt)*) => { eprintln!("[qemu-vm] {}", format!($($arg)*)) };
}
pub(crate) use say;

/// Root of the runner's cache: `$TRACER_QEMU_CACHE`, else `<workspace>/target/qemu`.
/// Created if missing.
pub fn cache_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("TRACER_QEMU_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest
                .parent()
                .unwrap_or(manifest)
                .join("target")
                .join("qemu")
        }
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating cache dir {}", dir.display()))?;
    Ok(dir)
}

/// Makes sure the host packages the runner needs ([`HOST_PACKAGES`]) are
/// installed, installing the missing ones with `apt-get` (one `apt-get update`
/// per process at most). Idempotent and cheap after the first call.
/// Fails with a clear message if something is missing and cannot be installed
/// (not root, no apt-get, apt failure).
pub fn ensure_host_tools() -> Result<()> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return Ok(());
    }
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        say!("host packages present: {}", HOST_PACKAGES.join(" "));
    } else {
        say!("host packages missing: {}", missing.join(" "));
        apt_install(&missing).context("installing the QEMU VM runner's host packages")?;
    }
    // Verify what we are going to execute really exists now.
    crate::guest::qemu_command(crate::kernel::Arch::X86_64)?;
    crate::guest::qemu_command(crate::kernel::Arch::Aarch64)?;
    busybox_binary()?;
    ip_binary()?;
    which("cpio").context("cpio not found after installing package cpio")?;
    *done = true;
    Ok(())
}

/// Is `pkg` installed according to dpkg?
pub(crate) fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).trim() == "install ok installed"
        })
        .unwrap_or(false)
}

fn require_apt_root(what: &str) -> Result<()> {
    if which("apt-get").is_none() {
        bail!(
            "{what}: apt-get not found; this runner needs a Debian-like host (install the packages {} by hand)",
            HOST_PACKAGES.join(" ")
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("{what}: must run as root to use apt-get (or install them beforehand)");
    }
    Ok(())
}

/// Runs `apt-get update` once per process (serialised across processes with a lock file).
pub(crate) fn apt_update_once() -> Result<()> {
    static UPDATED: Mutex<bool> = Mutex::new(false);
    let mut updated = UPDATED.lock().unwrap_or_else(|e| e.into_inner());
    if *updated {
        return Ok(());
    }
    require_apt_root("apt-get update")?;
    let _lock = FileLock::acquire(&cache_dir()?.join("apt.lock"))?;
    say!("running: apt-get update");
    let t = Instant::now();
    run(apt_command().arg("update"))?;
    say!("apt-get update done in {:.1}s", t.elapsed().as_secs_f64());
    *updated = true;
    Ok(())
}

/// `apt-get update` (once) then `apt-get install -y <pkgs>`.
pub(crate) fn apt_install(pkgs: &[&str]) -> Result<()> {
    require_apt_root(&format!("installing {}", pkgs.join(" ")))?;
    apt_update_once()?;
    let _lock = FileLock::acquire(&cache_dir()?.join("apt.lock"))?;
    say!("running: apt-get install -y {}", pkgs.join(" "));
    let t = Instant::now();
    run(apt_command().args(["install", "-y"]).args(pkgs))?;
    say!(
        "installed {} in {:.1}s",
        pkgs.join(" "),
        t.elapsed().as_secs_f64()
    );
    for p in pkgs {
        if !dpkg_installed(p) {
            bail!("apt-get install reported success but {p} is still not installed");
        }
    }
    Ok(())
}

/// An `apt-get` command that never prompts and waits for the dpkg lock.
pub(crate) fn apt_command() -> Command {
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o", "DPkg::Lock::Timeout=300"]);
    c
}

/// Finds an executable by name in `$PATH` plus the sbin directories.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain([
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn first_existing(cands: &[&str]) -> Option<PathBuf> {
    cands.iter().map(PathBuf::from).find(|p| is_executable(p))
}

/// Path of the host's busybox (from busybox-static).
pub(crate) fn busybox_binary() -> Result<PathBuf> {
    first_existing(BUSYBOX_CANDIDATES).context("busybox not found (Debian package busybox-static)")
}

/// Path of the host's iproute2 `ip`, checked not to be a busybox applet link.
pub(crate) fn ip_binary() -> Result<PathBuf> {
    let bb = busybox_binary().ok().and_then(|b| fs::canonicalize(b).ok());
    for c in IP_CANDIDATES {
        let p = Path::new(c);
        if !is_executable(p) {
            continue;
        }
        let real = fs::canonicalize(p).with_context(|| format!("resolving {c}"))?;
        if Some(&real) == bb.as_ref() {
            continue;
        }
        return Ok(p.to_path_buf());
    }
    bail!("iproute2's ip not found in {IP_CANDIDATES:?} (Debian package iproute2)")
}

/// Renders a command line for messages.
pub(crate) fn display_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Last `n` lines of `text`.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a command to completion, capturing its output; a non-zero exit is an
/// error carrying the command line and the tail of its stderr/stdout.
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    let line = display_cmd(cmd);
    let out = cmd.output().with_context(|| format!("spawning `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}):\n{}\n{}",
            out.status,
            last_lines(&String::from_utf8_lossy(&out.stderr), 30),
            last_lines(&String::from_utf8_lossy(&out.stdout), 10),
        );
    }
    Ok(out)
}

/// An exclusive `flock(2)` on a file, released on drop. Serialises cache
/// updates between concurrently running tests and processes.
pub(crate) struct FileLock(#[allow(dead_code)] File);

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        loop {
            // SAFETY: flock on a valid, owned file descriptor.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(FileLock(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
}

/// A process-unique name fragment: `<pid>-<counter>`.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Shared libraries (and the dynamic loader) a host binary needs, per `ldd`.
/// Empty for static binaries.
pub(crate) fn ldd(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stdout.contains("not a dynamic executable")
        || stderr.contains("not a dynamic executable")
        || stdout.contains("statically linked")
    {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        bail!("ldd {} failed: {stderr}{stdout}", bin.display());
    }
    parse_ldd(&stdout).with_context(|| format!("libraries of {}", bin.display()))
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once("=>") {
            let rest = rest.trim();
            if rest.starts_with("not found") {
                bail!("library {} not found", name.trim());
            }
            if let Some(p) = rest
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                libs.push(PathBuf::from(p));
            }
        } else if let Some(p) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            libs.push(PathBuf::from(p)); // the loader, e.g. /lib64/ld-linux-x86-64.so.2
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f85)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f85)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f85)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libbpf.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }
}
