//! Which tracing mechanisms the running kernel actually allows. Every answer
//! comes from trying or looking, never from the kernel version alone (except
//! as a fallback for ring buffers), and carries a human explanation.

use std::{ffi::CStr, fmt, fs, path::Path};

use super::{btf::Btf, sys, tracefs::Tracefs};

/// Kernel functions used as the fentry probe target, in order of preference.
/// Any traceable function works; these are the ones the tracer uses.
const FENTRY_PROBE_TARGETS: [&str; 2] = ["fib_table_delete", "fib_table_insert"];
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";
const LOCKDOWN: &str = "/sys/kernel/security/lockdown";

/// Whether a feature is usable, and how that was determined or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    pub available: bool,
    /// When unavailable: the reason. When available: how it was determined.
    pub detail: String,
}

impl Feature {
    fn yes(detail: impl Into<String>) -> Self {
        Self {
            available: true,
            detail: detail.into(),
        }
    }

    fn no(reason: impl Into<String>) -> Self {
        Self {
            available: false,
            detail: reason.into(),
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.available { "yes" } else { "no" };
        write!(f, "{state} ({})", self.detail)
    }
}

/// Kernel lockdown mode (`/sys/kernel/security/lockdown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockdownMode {
    None,
    /// Blocks writing kernel memory, e.g. bpf_probe_write_user.
    Integrity,
    /// Also blocks reading kernel memory: bpf_probe_read_kernel fails.
    Confidentiality,
    /// Could not be determined; the string says why.
    Unknown(String),
}

impl fmt::Display for LockdownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Integrity => f.write_str("integrity"),
            Self::Confidentiality => f.write_str("confidentiality"),
            Self::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// What the running kernel supports.
#[derive(Clone, Debug)]
pub struct KernelFeatures {
    /// `uname -r`.
    pub release: String,
    pub btf: Feature,
    pub kprobes: Feature,
    pub fentry: Feature,
    pub tracepoints: Feature,
    pub ringbuf: Feature,
    /// tc programs as tcx links: the packet path's own programs per
    /// watched interface.
    pub tcx: Feature,
    pub lockdown: LockdownMode,
}

impl KernelFeatures {
    /// Probes the running kernel. May mount tracefs and securityfs (as root)
    /// and briefly loads and attaches a do-nothing fentry program.
    #[cfg(test)]
    pub fn probe() -> Self {
        Self::probe_with(Btf::vmlinux().as_ref())
    }

    /// Probes with the kernel's BTF already parsed (or why it could not
    /// be): parsing it takes about 100 ms and tens of MiB, once is enough.
    pub fn probe_with(btf: Result<&Btf, &super::btf::BtfError>) -> Self {
        let release = kernel_release();
        let version = parse_version(&release);
        let tracefs = Tracefs::locate();
        Self {
            btf: match btf {
                Ok(b) if super::btf::from_btf_flag() => {
                    Feature::yes(format!("{} parsed (--btf)", b.path().display()))
                }
                Ok(b) => Feature::yes(format!("{} parsed", b.path().display())),
                Err(e) => Feature::no(e.to_string()),
            },
            kprobes: probe_kprobes(tracefs.as_ref().ok()),
            fentry: match btf {
                Ok(_) if !Path::new(super::btf::VMLINUX_BTF).exists() => Feature::no(format!(
                    "fentry programs attach by the ids of the kernel's own BTF, and this kernel \
                     has no {}; a --btf file serves only the offsets",
                    super::btf::VMLINUX_BTF
                )),
                Ok(b) => probe_fentry(b),
                Err(e) => Feature::no(format!("fentry needs kernel BTF: {e}")),
            },
            tracepoints: probe_tracepoints(&tracefs),
            ringbuf: probe_ringbuf(version),
            tcx: probe_tcx(version),
            lockdown: probe_lockdown(),
            release,
        }
    }
}

/// aya (0.14, kernels >= 4.17) creates kprobes through the `kprobe` perf PMU;
/// `kprobe_events` is the legacy tracefs interface.
fn probe_kprobes(tracefs: Option<&Tracefs>) -> Feature {
    let pmu = Path::new(KPROBE_PMU).exists();
    let events = tracefs.is_some_and(|t| t.has_file("kprobe_events"));
    match (pmu, events) {
        (true, true) => Feature::yes(format!("{KPROBE_PMU} and tracefs kprobe_events exist")),
        (true, false) => Feature::yes(format!(
            "{KPROBE_PMU} exists (tracefs kprobe_events does not; not needed)"
        )),
        (false, true) => Feature::no(format!(
            "{KPROBE_PMU} is missing (only legacy tracefs kprobe_events exists)"
        )),
        (false, false) => Feature::no(format!(
            "neither {KPROBE_PMU} nor tracefs kprobe_events exist \
             (kernel built without CONFIG_KPROBES / CONFIG_KPROBE_EVENTS)"
        )),
    }
}

/// Loads and attaches, as fexit on a function the tracer traces, a program
/// that reads an argument and the return value from its context at fixed
/// offsets, as the tracer's fexit programs do (their slot numbers come
/// from BTF as load-time constants, so no helper is needed: this works
/// from the first kernels with BPF trampolines, 5.5 on x86-64).
fn probe_fentry(btf: &Btf) -> Feature {
    let Some((target, id, nargs)) = FENTRY_PROBE_TARGETS.iter().find_map(|f| {
        let id = btf.func_id(f).ok()?;
        let nargs = btf.func_params(f).ok()?.len() as u32;
        Some((*f, id, nargs))
    }) else {
        return Feature::no(format!(
            "none of {FENTRY_PROBE_TARGETS:?} is in kernel BTF, cannot probe fentry"
        ));
    };
    let prog = match sys::load_fexit_probe(id, nargs) {
        Ok(fd) => fd,
        Err(e) => {
            return Feature::no(format!(
                "loading a BPF_PROG_TYPE_TRACING fexit program for {target} failed: {e}"
            ));
        }
    };
    match sys::attach_tracing(&prog) {
        // Dropping the link and program descriptors detaches and unloads.
        Ok(_link) => Feature::yes(format!(
            "an fexit program reading {target}'s arguments and return value loaded and attached"
        )),
        Err(e) => {
            // ENOTSUPP, as arm64 before 6.4 answers.
            let hint = if e.raw_os_error() == Some(524) {
                " (this kernel has no BPF trampolines for its architecture)"
            } else {
                ""
            };
            Feature::no(format!(
                "an fexit program for {target} loaded but attaching it failed: {e}{hint}"
            ))
        }
    }
}

fn probe_tracepoints(tracefs: &Result<Tracefs, super::tracefs::TracefsError>) -> Feature {
    match tracefs {
        Err(e) => Feature::no(e.to_string()),
        Ok(t) if !t.has_category("syscalls") => Feature::no(format!(
            "{}/events/syscalls is missing (kernel built without CONFIG_FTRACE_SYSCALLS)",
            t.root().display()
        )),
        Ok(t) => Feature::yes(format!(
            "tracefs at {} with syscalls events",
            t.root().display()
        )),
    }
}

/// Creates a ring buffer map; if that fails, falls back to the version check
/// (ring buffers appeared in 5.8).
fn probe_ringbuf(version: Option<(u32, u32, u32)>) -> Feature {
    let err = match sys::create_ringbuf() {
        Ok(_map) => return Feature::yes("BPF_MAP_TYPE_RINGBUF map created"),
        Err(e) => e,
    };
    match version {
        Some(v) if v >= (5, 8, 0) => Feature::yes(format!(
            "kernel {}.{} >= 5.8 (but creating a probe ring buffer failed: {err})",
            v.0, v.1
        )),
        _ => Feature::no(format!("creating a BPF_MAP_TYPE_RINGBUF map failed: {err}")),
    }
}

/// tcx links (BPF_LINK_TYPE_TCX) appeared in Linux 6.6; aya attaches tc
/// programs as tcx links from that version on, so the version is the test
/// (attaching one for real would need an interface to attach it to).
fn probe_tcx(version: Option<(u32, u32, u32)>) -> Feature {
    match version {
        Some(v) if v >= (6, 6, 0) => Feature::yes(format!(
            "kernel {}.{} >= 6.6: each --iface interface gets tc programs of its own",
            v.0, v.1
        )),
        Some(v) => Feature::no(format!("kernel {}.{} < 6.6 has no tcx links", v.0, v.1)),
        None => Feature::no("kernel version unknown"),
    }
}

fn probe_lockdown() -> LockdownMode {
    let path = Path::new(LOCKDOWN);
    let security = path.parent().expect("lockdown path has a parent");
    let unmounted = fs::read_dir(security).is_ok_and(|mut d| d.next().is_none());
    if unmounted && nix::unistd::geteuid().is_root() {
        // securityfs is not mounted yet: mount it (a failure shows up below
        // as an unreadable lockdown file).
        let _ = super::tracefs::mount_pseudo_fs("securityfs", security);
    }
    match fs::read_to_string(path) {
        Ok(text) => parse_lockdown(&text),
        Err(e) => LockdownMode::Unknown(format!("cannot read {LOCKDOWN}: {e}")),
    }
}

/// Parses `none [integrity] confidentiality`: the bracketed word is active.
pub fn parse_lockdown(text: &str) -> LockdownMode {
    let active = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')));
    match active {
        Some("none") => LockdownMode::None,
        Some("integrity") => LockdownMode::Integrity,
        Some("confidentiality") => LockdownMode::Confidentiality,
        _ => LockdownMode::Unknown(format!(
            "unexpected lockdown file content `{}`",
            text.trim()
        )),
    }
}

/// `uname -r`.
fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; uname fills it with NUL-terminated
    // strings on success.
    unsafe {
        let mut uts: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut uts) != 0 {
            return "unknown".to_string();
        }
        CStr::from_ptr(uts.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// `6.18.44-fc-v595` → (6, 18, 44). Missing parts count as 0.
pub fn parse_version(release: &str) -> Option<(u32, u32, u32)> {
    let numeric = release
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()?;
    let mut parts = numeric.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("6.18.44-fc-v595"), Some((6, 18, 44)));
        assert_eq!(parse_version("5.8.0"), Some((5, 8, 0)));
        assert_eq!(parse_version("6.1"), Some((6, 1, 0)));
        assert_eq!(parse_version("5.15.0-91-generic"), Some((5, 15, 0)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn lockdown_modes() {
        assert_eq!(
            parse_lockdown("none [integrity] confidentiality\n"),
            LockdownMode::Integrity
        );
        assert_eq!(
            parse_lockdown("[none] integrity confidentiality"),
            LockdownMode::None
        );
        assert!(matches!(parse_lockdown(""), LockdownMode::Unknown(_)));
    }

    /// Runs the real probes. Whatever the answers, an unavailable feature
    /// must say why.
    #[test]
    fn probe_reports_reasons() {
        let f = KernelFeatures::probe();
        assert!(f.btf.available, "{}", f.btf);
        assert!(parse_version(&f.release).is_some(), "{}", f.release);
        for feature in [&f.btf, &f.kprobes, &f.fentry, &f.tracepoints, &f.ringbuf] {
            assert!(!feature.detail.is_empty());
        }
        eprintln!(
            "release {} btf {} kprobes {} fentry {} tracepoints {} ringbuf {} lockdown {}",
            f.release, f.btf, f.kprobes, f.fentry, f.tracepoints, f.ringbuf, f.lockdown
        );
    }
}
