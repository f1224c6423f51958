//! Debian packages: LLVM 22 for bpf-linker, QEMU/busybox/cpio for the VM
//! tests, iproute2 and tcpdump for the integration tests and the demo,
//! nftables for the lab's masquerade rule (tests/lab/lab.sh); the aarch64
//! cross linker and libc (static arm64 builds), QEMU for arm64 guests,
//! `file` (the static-binary checks), and `chromium`, whose headless mode
//! renders `tracer report --format html` in the integration tests
//! (tests/report_html.rs); bpftool, with which tests/crash.rs checks that a
//! killed tracer leaves no BPF program behind; prometheus (and its promtool)
//! and prometheus-alertmanager, which tests/prometheus.rs and tests/fleet.rs
//! run against the shipped rules; g++, with which libfuzzer-sys builds
//! libFuzzer for the fuzz targets (`cargo xtask fuzz`); python3 and curl,
//! which the soak (bench/soak.sh, tests/soak.rs) runs its churn, samples
//! and verdict with.

use super::say;
use crate::{process, workspace};
use anyhow::{Result, bail};
use std::process::Command;

pub const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "iproute2",
    "tcpdump",
    "nftables",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "qemu-system-arm",
    "file",
    "lintian",
    "chromium",
    "bpftool",
    "prometheus",
    "prometheus-alertmanager",
    "g++",
    "python3",
    "curl",
];

pub fn ensure() -> Result<()> {
    if workspace::system_tool("dpkg-query").is_none() {
        bail!(
            "setup step apt failed: dpkg-query not found; this setup supports Debian-like hosts only \
             (install by hand: {})",
            PACKAGES.join(" ")
        );
    }
    let mut missing = Vec::new();
    for pkg in PACKAGES {
        if installed(pkg)? {
            say!("apt package {pkg}: present");
        } else {
            say!("apt package {pkg}: missing");
            missing.push(*pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !workspace::is_root() {
        bail!(
            "setup step apt failed: missing packages {}; not running as root, so run as root:\n  \
             apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    say!("running apt-get update (once, because packages are missing)");
    process::run_streamed("setup step apt (update)", apt_get().arg("update"))?;
    let aligned = align_with_archive(&missing)?;
    say!("installing {} {}", missing.join(" "), aligned.join(" "));
    let mut install = apt_get();
    install.args(["install", "-y"]).args(&missing);
    if !aligned.is_empty() {
        install.arg("--allow-downgrades").args(&aligned);
    }
    process::run_streamed("setup step apt (install)", &mut install)?;
    for pkg in &missing {
        if !installed(pkg)? {
            bail!(
                "setup step apt failed: apt-get install reported success but {pkg} is still not installed"
            );
        }
        say!("apt package {pkg}: installed");
    }
    Ok(())
}

/// Packages installed beside QEMU that must come from the same archive as
/// `qemu-system-*`. This machine kind ships qemu-utils from
/// bookworm-backports (10.x) without that suite in its sources; its
/// `Breaks: qemu-system-common (<< 8.0)` then refuses Debian's
/// qemu-system-x86 (7.2). Such a package, at a version no configured
/// archive offers, is put back to the archive's newest
/// (`qemu-utils=VERSION`, with `--allow-downgrades`).
const QEMU_COMPANIONS: &[&str] = &["qemu-utils", "qemu-block-extra"];

fn align_with_archive(missing: &[&str]) -> Result<Vec<String>> {
    if !missing.iter().any(|p| p.starts_with("qemu-system-")) {
        return Ok(Vec::new());
    }
    let mut pins = Vec::new();
    for pkg in QEMU_COMPANIONS {
        if !installed(pkg)? {
            continue;
        }
        let version =
            capture_stdout(Command::new("dpkg-query").args(["-W", "-f=${Version}", pkg]))?;
        let offered = capture_stdout(Command::new("apt-cache").args(["madison", pkg]))?;
        if let Some(pin) = archive_pin(pkg, version.trim(), &offered) {
            say!(
                "apt package {pkg}: {} is in no configured archive; taking {pin} to match qemu-system",
                version.trim()
            );
            pins.push(pin);
        }
    }
    Ok(pins)
}

/// `PKG=VERSION` for the newest version `apt-cache madison` lists (it lists
/// newest first), when the installed one is not among them.
pub fn archive_pin(pkg: &str, installed: &str, madison: &str) -> Option<String> {
    let offered: Vec<&str> = madison
        .lines()
        .filter_map(|l| l.split('|').nth(1))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if offered.is_empty() || offered.contains(&installed) {
        return None;
    }
    Some(format!("{pkg}={}", offered[0]))
}

fn capture_stdout(cmd: &mut Command) -> Result<String> {
    let out = process::capture(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Is `pkg` installed according to `dpkg-query -W -f='${Status}'`?
fn installed(pkg: &str) -> Result<bool> {
    let mut cmd = Command::new("dpkg-query");
    cmd.args(["-W", "-f=${Status}", pkg]);
    let out = process::capture(&mut cmd)?;
    // Exit status 1 with "no packages found matching" means never installed.
    Ok(out.status.success() && status_means_installed(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses dpkg's `want ok status` triple, e.g. `install ok installed` or
/// `hold ok installed` (installed) versus `deinstall ok config-files`.
pub fn status_means_installed(status: &str) -> bool {
    let words: Vec<&str> = status.split_whitespace().collect();
    matches!(words.as_slice(), [_, "ok", "installed"])
}

/// `apt-get` that never prompts and waits for the dpkg lock.
fn apt_get() -> Command {
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o", "DPkg::Lock::Timeout=300"]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_parsing() {
        assert!(status_means_installed("install ok installed"));
        assert!(status_means_installed("hold ok installed\n"));
        assert!(!status_means_installed("deinstall ok config-files"));
        assert!(!status_means_installed("install ok half-installed"));
        assert!(!status_means_installed("unknown ok not-installed"));
        assert!(!status_means_installed(""));
    }

    #[test]
    fn a_companion_no_archive_offers_is_pinned_to_the_archives_newest() {
        let madison = "qemu-utils | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages\n\
                       qemu-utils | 1:7.2+dfsg-7+deb12u15 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n";
        assert_eq!(
            archive_pin("qemu-utils", "1:10.0.2+ds-2+deb13u1~bpo12+1", madison).as_deref(),
            Some("qemu-utils=1:7.2+dfsg-7+deb12u18+b3")
        );
        assert_eq!(
            archive_pin("qemu-utils", "1:7.2+dfsg-7+deb12u15", madison),
            None
        );
        assert_eq!(archive_pin("qemu-utils", "1:10.0", ""), None);
    }
}
