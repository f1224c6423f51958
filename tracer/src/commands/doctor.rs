//! `tracer doctor`: what the running kernel supports, which mechanism each
//! hook would use, and what is missing with the remedy.
use anyhow::Result;
use serde_json::json;

use crate::{
    bpf::{ladder::AttachMode, loader::KernelFacts},
    cli::DoctorArgs,
    kernel::Feature,
};

fn remedy(name: &str) -> String {
    if name == "btf" {
        return format!(
            "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y, or {}",
            crate::kernel::btf::BTF_HOWTO
        );
    }
    match name {
        "kprobes" => "a kernel with CONFIG_KPROBES=y; until then the tracepoint path is used",
        "fentry" => {
            "a kernel with BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS: x86-64 from Linux 5.5, arm64 from 6.4) and its own BTF (/sys/kernel/btf/vmlinux) that permits tracing programs; until then kprobes or tracepoints are used"
        }
        "tracepoints" => "mount tracefs: mount -t tracefs nodev /sys/kernel/tracing",
        "ringbuf" => "Linux 5.8 or later",
        "tcx" => {
            "Linux 6.6 or later; until then --iface attaches the same tc programs as classic tc filters (a clsact qdisc with direct-action classifiers), which the tracer removes when it stops"
        }
        _ => "",
    }
    .to_string()
}

/// Without root: what can be read (the kernel, the architecture, BTF), and
/// what needs root to probe.
fn unprivileged(args: &DoctorArgs) -> Result<()> {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("? ({e})"));
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    let needs = "kprobes, fentry, tracepoints, the ring buffer, tcx, and the kernel function each hook would use";
    if args.json {
        let v = json!({
            "kernel": kernel,
            "arch": std::env::consts::ARCH,
            "root": false,
            "features": {"btf": {"available": btf, "detail": "/sys/kernel/btf/vmlinux"}},
            "needs_root": needs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("kernel     {kernel}");
    println!("arch       {}", std::env::consts::ARCH);
    println!(
        "btf         {}  /sys/kernel/btf/vmlinux",
        if btf { "yes" } else { "NO " }
    );
    println!();
    println!(
        "not root: probing {needs} needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN); run `sudo tracer doctor`"
    );
    Ok(())
}

pub fn run(args: DoctorArgs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return unprivileged(&args);
    }
    let facts = KernelFacts::gather()?;
    let f = &facts.features;
    let features: [(&str, &Feature); 6] = [
        ("btf", &f.btf),
        ("kprobes", &f.kprobes),
        ("fentry", &f.fentry),
        ("tracepoints", &f.tracepoints),
        ("ringbuf", &f.ringbuf),
        ("tcx", &f.tcx),
    ];
    let plan = facts.plan(AttachMode::Auto)?;
    let functions = facts.functions();
    if args.json {
        let v = json!({
            "kernel": f.release,
            "arch": std::env::consts::ARCH,
            "lockdown": format!("{:?}", f.lockdown),
            "features": features.iter().map(|(n, ft)| (n.to_string(), json!({"available": ft.available, "detail": ft.detail}))).collect::<serde_json::Map<_, _>>(),
            "hooks": plan.iter().map(|(h, (m, func))| (h.name().to_string(), json!({"mechanism": m.to_string(), "function": func, "function_error": functions.get(h).and_then(|r| r.clone().err())}))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("kernel     {}", f.release);
    println!("arch       {}", std::env::consts::ARCH);
    println!("lockdown   {:?}", f.lockdown);
    for (name, ft) in features {
        let mark = if ft.available { "yes" } else { "NO " };
        println!("{name:<12}{mark}  {}", ft.detail);
        if !ft.available {
            println!("{:<17}remedy: {}", "", remedy(name));
        }
    }
    println!();
    println!("hook          mechanism   kernel function");
    for (h, (m, func)) in &plan {
        let why = functions
            .get(h)
            .and_then(|r| r.clone().err())
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        println!(
            "{:<14}{:<12}{}{why}",
            h.name(),
            m.to_string(),
            func.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
