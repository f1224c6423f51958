//! A small runner for integration tests in throw-away QEMU VMs.
//!
//! The development machines' own kernel cannot attach kprobes or fentry, so
//! tests that need them boot a Debian cloud kernel under QEMU with software
//! emulation (TCG; KVM does not work there) and a generated initramfs, run a
//! shell scenario as PID 1's child, and read what it printed on the serial
//! console. See `/work/shared/platform.md`.
//!
//! The flow:
//! 1. [`ensure_kernel`]: fetch (`apt-get download`) and unpack a [`KernelSpec`]
//!    ([`DEBIAN_6_1`], [`DEBIAN_6_12`], all in [`KERNELS`]) into the cache
//!    (`$TRACER_QEMU_CACHE` or `<workspace>/target/qemu`), once.
//! 2. [`Initramfs`]: the scenario script, extra host binaries (copied with
//!    their `ldd` libraries), files and kernel modules
//!    ([`Initramfs::lab_tools`]: what the incident lab needs).
//! 3. [`run_scenario`] (or [`Initramfs::build`] + [`run_vm`]): boot, capture the
//!    console, enforce a timeout, return a [`VmOutput`].
//! 4. [`VmOutput::ensure_success`], [`VmOutput::section`],
//!    [`VmOutput::section_json`]: check the exit status and read the blocks the
//!    scenario printed between `=== BEGIN <name> ===` and `=== END <name> ===`.
//!
//! Host packages (qemu-system-x86, busybox-static, cpio, iproute2) are
//! installed with apt-get when missing ([`ensure_host_tools`], called by the
//! functions above). Environment knobs: `TRACER_QEMU_CACHE` (cache dir),
//! `QEMU_VM_ECHO=1` (copy the console live to stderr), `QEMU_VM_KEEP=1` (keep
//! the initramfs and its staging dir).
//!
//! ```no_run
//! use qemu_vm::{DEBIAN_6_12, Initramfs, ensure_kernel, run_scenario};
//! use std::time::Duration;
//!
//! # fn main() -> anyhow::Result<()> {
//! let kernel = ensure_kernel(&DEBIAN_6_12)?;
//! let vm = Initramfs::new(
//!     r#"
//!     set -e
//!     ip link add d0 type dummy          # iproute2's ip, not busybox's
//!     /usr/local/bin/tracer --json > /tmp/events & pid=$!
//!     sleep 3
//!     ip -6 route add 2001:db8::/64 dev d0
//!     ip -6 route del 2001:db8::/64 dev d0
//!     sleep 1; kill -INT $pid; wait $pid || true
//!     echo "=== BEGIN events ==="
//!     cat /tmp/events
//!     echo "=== END events ==="
//!     "#,
//! )
//! .binary("/work/main/target/release/tracer") // -> /usr/local/bin/tracer
//! .module("nft_masq"); // on top of dummy, veth, tun
//! let out = run_scenario(&kernel, &vm, Duration::from_secs(300))?;
//! out.ensure_success()?;
//! for event in out.section_json("events")? {
//!     println!("{event}");
//! }
//! # Ok(())
//! # }
//! ```

mod guest;
mod host;
mod initramfs;
mod kernel;
mod lab_tools;
mod vm;

pub use guest::require_static;
pub use host::{HOST_PACKAGES, cache_dir, ensure_host_tools};
pub use initramfs::{
    DEFAULT_MODULES, DMESG_SECTION, EXIT_MARKER_PREFIX, GUEST_BIN_DIR, GUEST_IP, Initramfs,
    MODULE_PARAMS, SCENARIO_START_MARKER, SETUP_FAILED_EXIT,
};
pub use kernel::{
    Arch, DEBIAN_5_10, DEBIAN_6_1, DEBIAN_6_1_ARM64, DEBIAN_6_12, DEBIAN_6_12_ARM64, KERNELS,
    KernelFiles, KernelSpec, ModuleStatus, ensure_kernel,
};
pub use lab_tools::{LAB_MODULES, LAB_PROGRAMS};
pub use vm::{
    FAILURE_TAIL_LINES, VmOptions, VmOutput, run_scenario, run_vm, run_vm_with,
    tcg_unavailable_reason,
};
