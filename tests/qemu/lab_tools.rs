//! What the subnet-router lab (tests/lab/lab.sh) needs in a guest beyond
//! busybox and iproute2's `ip`: bash (the script's shell), nft (its
//! masquerade rule), tc (to see classic tc filters), and the kernel
//! modules behind them, which the Debian cloud kernels build as modules.

use crate::host::{apt_install, dpkg_installed, which};
use crate::initramfs::Initramfs;
use crate::kernel::Arch;
use anyhow::{Context, Result, bail};

/// The lab's drivers, by module name (their dependencies come from the
/// kernel package's `modules.dep`): TUN and veth links, nftables with
/// the NAT chain type and masquerade, and classic tc's clsact qdisc
/// (`sch_ingress`) and BPF classifier (`cls_bpf`).
pub const LAB_MODULES: &[&str] = &[
    "tun",
    "veth",
    "nf_tables",
    "nft_chain_nat",
    "nft_masq",
    "sch_ingress",
    "cls_bpf",
];

/// The host programs the lab runs in the guest: (name, guest path, Debian
/// package that provides it, installed with apt-get when missing).
pub const LAB_PROGRAMS: &[(&str, &str, &str)] = &[
    ("bash", "/bin/bash", "bash"),
    ("nft", "/usr/sbin/nft", "nftables"),
    ("tc", "/usr/sbin/tc", "iproute2"),
];

impl Initramfs {
    /// Adds [`LAB_PROGRAMS`] (this host's, with their libraries) and
    /// [`LAB_MODULES`] for a guest of architecture `arch`. Only guests of
    /// the host's architecture can run the host's programs: any other is
    /// an error.
    pub fn lab_tools(self, arch: Arch) -> Result<Self> {
        if !arch.is_host() {
            bail!(
                "the lab's bash, nft and tc come from this host and cannot run in a {} guest",
                arch.debian()
            );
        }
        let missing: Vec<&str> = LAB_PROGRAMS
            .iter()
            .filter(|(name, _, package)| which(name).is_none() || !dpkg_installed(package))
            .map(|(_, _, package)| *package)
            .collect();
        if !missing.is_empty() {
            apt_install(&missing).context("installing the lab's programs for the guest")?;
        }
        let mut vm = self;
        for (name, guest_path, package) in LAB_PROGRAMS {
            let host = which(name).with_context(|| {
                format!("{name} not found on this host (apt-get install -y {package})")
            })?;
            vm = vm.binary_at(host, *guest_path);
        }
        for m in LAB_MODULES {
            vm = vm.module(*m);
        }
        Ok(vm)
    }
}
