//! Guest kernels: which Debian packages, how to fetch and unpack them.

use crate::host::{self, FileLock, apt_update_once, run, say};
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A guest kernel: a Debian `linux-image-*` package pinned to a version.
///
/// The list of kernels is data ([`DEBIAN_6_1`], [`DEBIAN_6_12`], [`KERNELS`]):
/// to move to newer images change only these constants (see
/// `apt-cache madison 'linux-image-6.1*cloud-amd64'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSpec {
    /// Short label for messages and test names, e.g. `"debian-6.12"`.
    pub name: &'static str,
    /// Debian binary package holding `boot/vmlinuz-*` and `lib/modules/*`.
    pub package: &'static str,
    /// Pinned package version. If the apt sources no longer carry it, the
    /// newest version of the *same package* (same kernel ABI) is used and a
    /// warning is printed.
    pub version: &'static str,
    /// The guest's architecture (QEMU system, console, busybox and binaries).
    pub arch: Arch,
}

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `qemu-system-x86_64`, console ttyS0; guest tools are the host's own.
    X86_64,
    /// `qemu-system-aarch64 -M virt`, console ttyAMA0; busybox and iproute2
    /// come from Debian's arm64 packages, and test binaries must be static.
    Aarch64,
}

impl Arch {
    /// Debian's name (`dpkg --print-architecture`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// Rust's target triple of the static release binaries for this guest.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Is this the host's own architecture (host binaries run in the guest)?
    pub fn is_host(self) -> bool {
        match self {
            Arch::X86_64 => cfg!(target_arch = "x86_64"),
            Arch::Aarch64 => cfg!(target_arch = "aarch64"),
        }
    }
}

/// Debian 12 (bookworm) 6.1 LTS cloud kernel; newest in bookworm-security when chosen.
pub const DEBIAN_6_1: KernelSpec = KernelSpec {
    name: "debian-6.1",
    package: "linux-image-6.1.0-56-cloud-amd64",
    version: "6.1.192-2",
    arch: Arch::X86_64,
};

/// Debian 6.12 LTS cloud kernel (bookworm backport in bookworm-security);
/// newest when chosen.
pub const DEBIAN_6_12: KernelSpec = KernelSpec {
    name: "debian-6.12",
    package: "linux-image-6.12.117+deb12-cloud-amd64",
    version: "6.12.117-1~deb12u1",
    arch: Arch::X86_64,
};

/// Debian 11 (bullseye) 5.10 LTS cloud kernel, from bullseye-security (the
/// QEMU tests add the bullseye suites to apt's sources): no
/// `bpf_get_func_arg` (5.17), no tcx (6.6).
pub const DEBIAN_5_10: KernelSpec = KernelSpec {
    name: "debian-5.10",
    package: "linux-image-5.10.0-46-cloud-amd64",
    version: "5.10.262-1",
    arch: Arch::X86_64,
};

/// Debian 12's arm64 6.1 cloud kernel: kprobes, but no fentry (no
/// DYNAMIC_FTRACE_WITH_DIRECT_CALLS on arm64 6.1).
pub const DEBIAN_6_1_ARM64: KernelSpec = KernelSpec {
    name: "debian-6.1-arm64",
    package: "linux-image-6.1.0-57-cloud-arm64:arm64",
    version: "6.1.192-3",
    arch: Arch::Aarch64,
};

/// Debian's arm64 6.12 cloud kernel (bookworm backport): kprobes and fentry.
pub const DEBIAN_6_12_ARM64: KernelSpec = KernelSpec {
    name: "debian-6.12-arm64",
    package: "linux-image-6.12.118+deb12-cloud-arm64:arm64",
    version: "6.12.118-1~deb12u1",
    arch: Arch::Aarch64,
};

/// Every kernel integration tests should cover.
pub const KERNELS: &[KernelSpec] = &[
    DEBIAN_6_1,
    DEBIAN_6_12,
    DEBIAN_5_10,
    DEBIAN_6_1_ARM64,
    DEBIAN_6_12_ARM64,
];

/// An unpacked kernel package in the cache.
#[derive(Debug, Clone)]
pub struct KernelFiles {
    /// The spec this came from.
    pub spec: KernelSpec,
    /// Package version actually unpacked (normally `spec.version`).
    pub version: String,
    /// Kernel release (`uname -r` in the guest), e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// The bootable image (`boot/vmlinuz-<release>`).
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>`, with a `modules.dep` generated at unpack time.
    pub modules_dir: PathBuf,
    /// `boot/config-<release>` if the package ships it.
    pub config: Option<PathBuf>,
}

/// How a kernel provides a driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleStatus {
    /// Compiled into the image (listed in `modules.builtin`).
    Builtin,
    /// A loadable module: its path relative to [`KernelFiles::modules_dir`]
    /// (possibly compressed, e.g. `kernel/drivers/net/dummy.ko.xz`).
    Loadable(PathBuf),
    /// Neither.
    Missing,
}

/// Downloads (`apt-get download`) and unpacks (`dpkg-deb -x`) `spec`'s package
/// into `<cache>/<package>/` (cache: `$TRACER_QEMU_CACHE` or
/// `<workspace>/target/qemu`), generates `modules.dep` with busybox `depmod`,
/// and returns the paths. Cached: later calls (from any process) only read the
/// cache. Safe to call concurrently.
pub fn ensure_kernel(spec: &KernelSpec) -> Result<KernelFiles> {
    ensure_kernel_inner(spec).with_context(|| {
        format!(
            "preparing kernel {} ({} {})",
            spec.name, spec.package, spec.version
        )
    })
}

fn ensure_kernel_inner(spec: &KernelSpec) -> Result<KernelFiles> {
    let cache = host::cache_dir()?;
    let dir = cache.join(spec.package);
    let _lock = FileLock::acquire(&cache.join(format!("{}.lock", spec.package)))?;
    let stamp_path = dir.join(".complete");
    let stamp = fs::read_to_string(&stamp_path)
        .ok()
        .map(|s| s.trim().to_string());
    if stamp.as_deref() == Some(spec.version) {
        return locate(spec, &dir, spec.version);
    }

    host::ensure_host_tools()?;
    crate::guest::ensure_apt_sources(spec.arch)?;
    let version = match resolve_version(spec)? {
        Some(v) => v,
        None => match &stamp {
            Some(cached) => {
                say!(
                    "WARNING: {} {} is not in the apt sources; using the cached {cached}",
                    spec.package,
                    spec.version
                );
                return locate(spec, &dir, cached);
            }
            None => bail!(
                "package {} is not available from this machine's apt sources (even after apt-get update); \
                 pick an existing one with `apt-cache search 'linux-image-.*cloud-amd64$'` and update the \
                 KernelSpec constants in tests/qemu/kernel.rs",
                spec.package
            ),
        },
    };
    if stamp.as_deref() == Some(version.as_str()) {
        return locate(spec, &dir, &version);
    }

    let t = Instant::now();
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    say!(
        "downloading {}={version} into {}",
        spec.package,
        dir.display()
    );
    run(host::apt_command()
        .current_dir(&dir)
        .args(["-o", "APT::Sandbox::User=root", "download"])
        .arg(format!("{}={version}", spec.package)))?;
    let deb = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", dir.display()))?;
    let root = dir.join("root");
    say!("unpacking {}", deb.display());
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;

    let (release, modbase) = find_modules(&root)?;
    // Debian's packages do not ship modules.dep (the postinst runs depmod);
    // busybox depmod understands the .ko.xz of the 6.12 packages.
    say!("generating modules.dep for {release}");
    run(Command::new(host::busybox_binary()?)
        .arg("depmod")
        .arg("-b")
        .arg(&modbase)
        .arg(&release))?;

    fs::write(&stamp_path, format!("{version}\n"))?;
    say!(
        "kernel {} ready in {:.1}s",
        spec.name,
        t.elapsed().as_secs_f64()
    );
    locate(spec, &dir, &version)
}

/// The version to download: the pinned one if apt knows it, else the newest
/// of the same package (with a warning), else `None`.
fn resolve_version(spec: &KernelSpec) -> Result<Option<String>> {
    let mut versions = madison(spec.package)?;
    if !versions.iter().any(|v| v == spec.version) {
        // The lists may be missing (fresh machine) or stale.
        apt_update_once()?;
        versions = madison(spec.package)?;
    }
    if versions.iter().any(|v| v == spec.version) {
        return Ok(Some(spec.version.to_string()));
    }
    // `apt-cache madison` lists versions newest first.
    match versions.first() {
        Some(v) => {
            say!(
                "WARNING: {} {} is no longer in the apt sources (available: {}); using {v}. \
                 Update the KernelSpec in tests/qemu/kernel.rs.",
                spec.package,
                spec.version,
                versions.join(", ")
            );
            Ok(Some(v.clone()))
        }
        None => Ok(None),
    }
}

fn madison(pkg: &str) -> Result<Vec<String>> {
    let out = Command::new("apt-cache")
        .arg("madison")
        .arg(pkg)
        .output()
        .context("running apt-cache madison")?;
    let mut v: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split('|').map(str::trim);
        if f.next() == Some(pkg)
            && let Some(ver) = f.next()
            && !v.iter().any(|x| x == ver)
        {
            v.push(ver.to_string());
        }
    }
    Ok(v)
}

/// Finds `lib/modules/<release>` (or `usr/lib/modules/...`) under an unpacked
/// package; returns the release and the depmod base dir.
fn find_modules(root: &Path) -> Result<(String, PathBuf)> {
    for base in [root.to_path_buf(), root.join("usr")] {
        let mods = base.join("lib/modules");
        if let Ok(rd) = fs::read_dir(&mods) {
            let rels: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            match rels.as_slice() {
                [one] => return Ok((one.clone(), base)),
                [] => {}
                many => bail!("several module trees in {}: {many:?}", mods.display()),
            }
        }
    }
    bail!("no lib/modules/<release> in {}", root.display())
}

fn locate(spec: &KernelSpec, dir: &Path, version: &str) -> Result<KernelFiles> {
    let root = dir.join("root");
    let (release, modbase) = find_modules(&root)?;
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        bail!(
            "{} missing (cache damaged? delete {})",
            vmlinuz.display(),
            dir.display()
        );
    }
    let modules_dir = modbase.join("lib/modules").join(&release);
    if !modules_dir.join("modules.dep").is_file() {
        bail!(
            "{}/modules.dep missing (cache damaged? delete {})",
            modules_dir.display(),
            dir.display()
        );
    }
    let config = Some(root.join("boot").join(format!("config-{release}"))).filter(|p| p.is_file());
    Ok(KernelFiles {
        spec: *spec,
        version: version.to_string(),
        release,
        vmlinuz,
        modules_dir,
        config,
    })
}

/// Module names are compared with `-` and `_` unified, as the kernel does.
fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// `kernel/drivers/net/dummy.ko.xz` -> `dummy`.
fn module_name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    norm(stem)
}

impl KernelFiles {
    /// `CONFIG_*` value from the kernel's config (`"y"`, `"m"`, a string, or
    /// `None` if unset or no config shipped). `key` includes the `CONFIG_` prefix.
    pub fn config_value(&self, key: &str) -> Option<String> {
        let text = fs::read_to_string(self.config.as_ref()?).ok()?;
        let prefix = format!("{key}=");
        text.lines().find_map(|l| {
            l.strip_prefix(&prefix)
                .map(|v| v.trim_matches('"').to_string())
        })
    }

    fn modules_dep(&self) -> Result<BTreeMap<String, (String, Vec<String>)>> {
        let p = self.modules_dir.join("modules.dep");
        let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let deps = deps.split_whitespace().map(str::to_string).collect();
            map.insert(module_name_of(path), (path.to_string(), deps));
        }
        Ok(map)
    }

    fn builtin(&self) -> BTreeSet<String> {
        fs::read_to_string(self.modules_dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .map(module_name_of)
            .collect()
    }

    /// Whether `name` (e.g. `"veth"`) is built in, a loadable module, or absent.
    pub fn module_status(&self, name: &str) -> Result<ModuleStatus> {
        let n = norm(name);
        if let Some((path, _)) = self.modules_dep()?.get(&n) {
            return Ok(ModuleStatus::Loadable(PathBuf::from(path)));
        }
        if self.builtin().contains(&n) {
            return Ok(ModuleStatus::Builtin);
        }
        Ok(ModuleStatus::Missing)
    }

    /// Module files (relative to [`Self::modules_dir`]) to `insmod`, in load
    /// order, for `names` and all their dependencies from `modules.dep`.
    /// Built-in drivers are skipped; an unknown name is an error.
    pub fn module_load_order(&self, names: &[&str]) -> Result<Vec<PathBuf>> {
        let dep = self.modules_dep()?;
        let builtin = self.builtin();
        let by_path: BTreeMap<&str, &str> = dep
            .iter()
            .map(|(n, (p, _))| (p.as_str(), n.as_str()))
            .collect();
        let mut order: Vec<PathBuf> = Vec::new();
        let mut seen = BTreeSet::new();

        fn visit(
            name: &str,
            dep: &BTreeMap<String, (String, Vec<String>)>,
            by_path: &BTreeMap<&str, &str>,
            seen: &mut BTreeSet<String>,
            order: &mut Vec<PathBuf>,
        ) -> Result<()> {
            if !seen.insert(name.to_string()) {
                return Ok(());
            }
            let (path, deps) = dep
                .get(name)
                .with_context(|| format!("module {name} not in modules.dep"))?;
            for d in deps {
                let dn = by_path
                    .get(d.as_str())
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| module_name_of(d));
                visit(&dn, dep, by_path, seen, order)?;
            }
            order.push(PathBuf::from(path));
            Ok(())
        }

        for name in names {
            let n = norm(name);
            if dep.contains_key(&n) {
                visit(&n, &dep, &by_path, &mut seen, &mut order)?;
            } else if !builtin.contains(&n) {
                bail!(
                    "kernel {} ({}) has no driver {name:?} (neither module nor built in)",
                    self.spec.name,
                    self.release
                );
            }
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(module_name_of("kernel/drivers/net/dummy.ko.xz"), "dummy");
        assert_eq!(
            module_name_of("kernel/arch/x86/crypto/poly1305-x86_64.ko"),
            "poly1305_x86_64"
        );
        assert_eq!(module_name_of("kernel/net/ipv6/ipv6.ko"), "ipv6");
    }

    #[test]
    fn kernels_are_distinct() {
        let mut names: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
        names.dedup();
        assert_eq!(names.len(), KERNELS.len());
    }
}
