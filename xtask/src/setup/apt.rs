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
    say!("installing {}", missing.join(" "));
    process::run_streamed(
        "setup step apt (install)",
        apt_get().args(["install", "-y"]).args(&missing),
    )?;
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
}
