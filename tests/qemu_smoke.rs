//! Smoke test of the QEMU VM runner (tests/qemu/): for each Debian kernel,
//! boot a VM, create dummy/veth/tun links and an IPv6 route with iproute2, and
//! check that the kernel can trace what the tracer needs (fib_table_delete is
//! an ftrace-able function, kprobe PMU present).
//!
//! Needs root on a Debian-like host (apt-get installs qemu etc. if missing)
//! and network access to the Debian mirror the first time (kernels are cached
//! under target/qemu). Each VM takes ~10-30 s under TCG.

use anyhow::{Context, Result, ensure};
use qemu_vm::{
    DEBIAN_6_1, DEBIAN_6_12, Initramfs, KernelSpec, ModuleStatus, ensure_kernel, run_scenario,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
set -e
ip link add d0 type dummy
ip link set d0 up
ip -6 addr add 2001:db8:1::1/64 dev d0 nodad
ip -6 route add 2001:db8:2::/64 via 2001:db8:1::2 dev d0
ip link add ve0 type veth peer name ve1
ip tuntap add dev tun0 mode tun
echo "=== BEGIN smoke ==="
echo "uname=$(uname -r)"
echo "iproute2=$(ip -V)"
echo "fib_table_delete=$(grep -c fib_table_delete /sys/kernel/tracing/available_filter_functions || true)"
if [ -d /sys/bus/event_source/devices/kprobe ]; then echo "kprobe_dir=yes"; else echo "kprobe_dir=no"; fi
echo "btf=$(if [ -e /sys/kernel/btf/vmlinux ]; then echo yes; else echo no; fi)"
echo "lockdown=$(cat /sys/kernel/security/lockdown 2>/dev/null || echo absent)"
echo "route6=$(ip -6 route show 2001:db8:2::/64)"
echo "links=$(ip -o link show | cut -d: -f2 | cut -d@ -f1 | tr -d ' ' | tr '\n' ' ')"
echo "modules=$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
echo "mounts=$(cut -d' ' -f2,3 /proc/mounts | tr ' \n' ':,')"
echo "=== END smoke ==="
"#;

fn smoke(spec: &KernelSpec) -> Result<()> {
    let t0 = Instant::now();
    if let Some(reason) = qemu_vm::tcg_unavailable_reason()? {
        println!(
            "SKIP {}: QEMU TCG emulation impossible here: {reason}",
            spec.name
        );
        return Ok(());
    }
    let kernel = ensure_kernel(spec)?;
    let t_kernel = t0.elapsed();
    for m in ["dummy", "veth", "tun"] {
        println!("{}: {m} is {:?}", spec.name, kernel.module_status(m)?);
        ensure!(
            kernel.module_status(m)? != ModuleStatus::Missing,
            "{}: no driver {m}",
            spec.name
        );
    }

    let out = run_scenario(&kernel, &Initramfs::new(SCENARIO), Duration::from_secs(300))?;
    out.ensure_success()?;
    let section = out.section("smoke")?;
    let kv: BTreeMap<&str, &str> = section.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| {
        kv.get(k)
            .copied()
            .with_context(|| format!("no {k}= in section smoke:\n{section}"))
    };

    let check = || -> Result<()> {
        ensure!(
            get("uname")? == kernel.release,
            "guest runs {} not {}",
            get("uname")?,
            kernel.release
        );
        ensure!(
            get("iproute2")?.contains("iproute2"),
            "`ip` is not iproute2: {}",
            get("iproute2")?
        );
        let n: u32 = get("fib_table_delete")?
            .trim()
            .parse()
            .context("fib_table_delete count")?;
        ensure!(n >= 1, "fib_table_delete not in available_filter_functions");
        ensure!(
            get("kprobe_dir")? == "yes",
            "/sys/bus/event_source/devices/kprobe missing"
        );
        ensure!(get("btf")? == "yes", "/sys/kernel/btf/vmlinux missing");
        ensure!(
            get("route6")?.contains("via 2001:db8:1::2"),
            "IPv6 route not installed"
        );
        let links: Vec<&str> = get("links")?.split_whitespace().collect();
        for l in ["lo", "d0", "ve0", "ve1", "tun0"] {
            ensure!(links.contains(&l), "link {l} missing: {links:?}");
        }
        ensure!(
            links.len() == 5,
            "unexpected links (dummy numdummies=0?): {links:?}"
        );
        let mounts = get("mounts")?;
        for m in [
            "/sys/kernel/tracing:tracefs",
            "/sys/fs/bpf:bpf",
            "/sys/fs/cgroup:cgroup2",
            "/sys/kernel/debug:debugfs",
        ] {
            ensure!(mounts.contains(m), "{m} not mounted: {mounts}");
        }
        Ok(())
    };
    check().map_err(|e| out.error(&format!("{e:#}")))?;

    println!("{}: section smoke:\n{section}", spec.name);
    println!(
        "TIMING {}: kernel ready {:.1}s, boot to shell {:.1}s, VM total {:.1}s, test total {:.1}s",
        spec.name,
        t_kernel.as_secs_f64(),
        out.boot_time.unwrap_or_default().as_secs_f64(),
        out.total_time.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The runner's own contract: extra binaries (with their libraries) shadow
/// busybox applets, files land where asked, a failing scenario's status and
/// dmesg reach the error, and a hung VM is killed at the timeout.
#[test]
fn runner_reports_failures_and_timeouts() -> Result<()> {
    if let Some(reason) = qemu_vm::tcg_unavailable_reason()? {
        println!("SKIP: QEMU TCG emulation impossible here: {reason}");
        return Ok(());
    }
    let kernel = ensure_kernel(&DEBIAN_6_12)?;
    let tc = ["/usr/sbin/tc", "/sbin/tc"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .context("iproute2 tc")?;
    let vm = Initramfs::new(
        r#"
echo "=== BEGIN out ==="
tc -V
cat /etc/greeting
echo "=== END out ==="
echo "=== BEGIN json ==="
printf '{"n":1}\n\n  {"n":2}\n'
echo "=== END json ==="
exit 7
"#,
    )
    .binary(tc)
    .file("/etc/greeting", "hello\n")
    .no_default_modules();
    let out = run_scenario(&kernel, &vm, Duration::from_secs(300))?;
    ensure!(out.exit_code == 7, "exit code {} != 7", out.exit_code);
    let body = out.section("out")?;
    ensure!(
        body.contains("tc utility, iproute2"),
        "tc is not iproute2's:\n{body}"
    );
    ensure!(body.contains("hello"), "file missing:\n{body}");
    let json = out.section_json("json")?;
    ensure!(
        json.len() == 2 && json[1]["n"] == 2,
        "json section: {json:?}"
    );
    let err = format!("{:#}", out.ensure_success().unwrap_err());
    println!("--- failing scenario error, as a caller sees it ---\n{err}");
    ensure!(
        err.contains("status 7") && err.contains("guest dmesg"),
        "unexpected error text:\n{err}"
    );
    ensure!(
        !out.scenario_output().contains("Linux version"),
        "boot log leaked into scenario output"
    );

    let t = Instant::now();
    let hung = run_scenario(
        &kernel,
        &Initramfs::new("sleep 600"),
        Duration::from_secs(10),
    );
    let err = format!(
        "{:#}",
        hung.err().context("a VM sleeping 600 s did not time out")?
    );
    println!("--- timeout error, as a caller sees it ---\n{err}");
    ensure!(err.contains("timed out"), "unexpected error: {err}");
    ensure!(
        t.elapsed() < Duration::from_secs(30),
        "timeout not enforced ({:?})",
        t.elapsed()
    );
    Ok(())
}

#[test]
fn smoke_debian_6_1() -> Result<()> {
    smoke(&DEBIAN_6_1)
}

#[test]
fn smoke_debian_6_12() -> Result<()> {
    smoke(&DEBIAN_6_12)
}
