//! The guest's root filesystem: a newc cpio built from busybox, iproute2,
//! caller binaries, kernel modules and a generated `/init`.

use crate::guest;
use crate::host::{self, ldd, run, say};
use crate::kernel::KernelFiles;
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// Drivers loaded in every VM unless [`Initramfs::no_default_modules`] is used.
/// In the Debian cloud kernels all three are modules (`=m`).
pub const DEFAULT_MODULES: &[&str] = &["dummy", "veth", "tun"];

/// Parameters `/init` passes to `insmod`: no `dummy0` appears by itself, so
/// scenarios start with only `lo`.
pub const MODULE_PARAMS: &[(&str, &str)] = &[("dummy", "numdummies=0")];

/// Guest directory that [`Initramfs::binary`] installs into.
pub const GUEST_BIN_DIR: &str = "/usr/local/bin";

/// Guest path of iproute2's `ip` (also linked from `/sbin/ip` and `/bin/ip`).
pub const GUEST_IP: &str = "/usr/sbin/ip";

/// Line printed by `/init` right before the scenario starts.
pub const SCENARIO_START_MARKER: &str = "=== QEMU-VM SCENARIO START ===";
/// Prefix of the line `/init` prints after the scenario: `=== QEMU-VM EXIT <code> ===`.
pub const EXIT_MARKER_PREFIX: &str = "=== QEMU-VM EXIT ";

/// Section in which `/init` prints the guest's `dmesg` when the scenario failed.
pub const DMESG_SECTION: &str = "qemu-vm-dmesg";

/// Exit code reported when `/init` could not set the VM up (mount, insmod,
/// loopback) and the scenario did not run.
pub const SETUP_FAILED_EXIT: i32 = 125;

/// Description of a VM's initramfs; build it with [`Initramfs::build`] or let
/// [`crate::run_scenario`] do it.
///
/// The guest gets:
/// * busybox (static) at `/bin/busybox` with its applets linked in `/bin`,
///   except applets that would shadow an included binary (e.g. `ip`);
/// * iproute2's `ip` at [`GUEST_IP`] plus every binary added with
///   [`Self::binary`]/[`Self::binary_at`], with the shared libraries `ldd`
///   reports and the dynamic loader, at their host paths;
/// * the kernel modules of [`DEFAULT_MODULES`] and [`Self::module`] with their
///   dependencies, loaded by `/init`;
/// * `/init`, which mounts proc, sysfs, devtmpfs, devpts, tracefs
///   (`/sys/kernel/tracing`), debugfs, securityfs, bpffs (`/sys/fs/bpf`) and
///   cgroup2 (`/sys/fs/cgroup`), brings `lo` up, runs the scenario script with
///   busybox `sh` (stdin `/dev/null`, stdout/stderr on the serial console), dumps
///   `dmesg` as section [`DMESG_SECTION`] if the script failed, prints
///   `=== QEMU-VM EXIT <code> ===` and powers off.
///
/// In the script, `ip` and every included binary whose name is also a busybox
/// applet are shell functions calling the included binary (busybox `sh` would
/// otherwise prefer its own applet). Child shells do not inherit this: call
/// binaries by full path there.
#[derive(Debug, Clone)]
pub struct Initramfs {
    script: String,
    binaries: Vec<(PathBuf, String)>,
    files: Vec<(String, Vec<u8>, u32)>,
    modules: Vec<String>,
    gzip: bool,
}

impl Initramfs {
    /// An initramfs that runs `script` (busybox `sh` syntax) as the scenario.
    /// The scenario's exit status is the VM's exit code.
    pub fn new(script: impl Into<String>) -> Self {
        Initramfs {
            script: script.into(),
            binaries: Vec::new(),
            files: Vec::new(),
            modules: DEFAULT_MODULES.iter().map(|s| s.to_string()).collect(),
            gzip: false,
        }
    }

    /// Adds a host executable as `/usr/local/bin/<file name>` (plus its libraries).
    pub fn binary(self, host_path: impl AsRef<Path>) -> Self {
        let p = host_path.as_ref().to_path_buf();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.binary_at(p, format!("{GUEST_BIN_DIR}/{name}"))
    }

    /// Adds a host executable at an absolute guest path (plus its libraries).
    pub fn binary_at(mut self, host_path: impl AsRef<Path>, guest_path: impl Into<String>) -> Self {
        self.binaries
            .push((host_path.as_ref().to_path_buf(), guest_path.into()));
        self
    }

    /// Adds a regular file (mode 0644) with the given contents at an absolute guest path.
    pub fn file(self, guest_path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        self.file_mode(guest_path, contents, 0o644)
    }

    /// Like [`Self::file`] with an explicit mode (e.g. `0o755` for a helper script).
    pub fn file_mode(
        mut self,
        guest_path: impl Into<String>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Self {
        self.files.push((guest_path.into(), contents.into(), mode));
        self
    }

    /// Also loads kernel module `name` (and its dependencies) before the
    /// scenario, e.g. `"nft_masq"` or `"bridge"`. Built-in drivers are accepted
    /// and skipped; unknown names make [`Self::build`] fail.
    pub fn module(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.modules.contains(&name) {
            self.modules.push(name);
        }
        self
    }

    /// Drops [`DEFAULT_MODULES`] (only modules added afterwards are loaded).
    pub fn no_default_modules(mut self) -> Self {
        self.modules.clear();
        self
    }

    /// Compresses the archive with gzip (smaller file, slower guest unpack
    /// under TCG; off by default).
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// Builds the archive for `kernel` at `out` (written atomically).
    pub fn build(&self, kernel: &KernelFiles, out: &Path) -> Result<()> {
        self.build_inner(kernel, out).with_context(|| {
            format!(
                "building initramfs {} for {}",
                out.display(),
                kernel.spec.name
            )
        })
    }

    fn build_inner(&self, kernel: &KernelFiles, out: &Path) -> Result<()> {
        host::ensure_host_tools()?;
        let tmp_root = host::cache_dir()?.join("tmp");
        fs::create_dir_all(&tmp_root)?;
        let stage = StageDir(tmp_root.join(format!("initramfs-{}", host::unique_suffix())));
        if stage.0.exists() {
            fs::remove_dir_all(&stage.0)?;
        }
        let root = stage.0.as_path();
        for d in [
            "bin",
            "sbin",
            "usr/bin",
            "usr/sbin",
            "usr/local/bin",
            "lib",
            "lib64",
            "etc/qemu-vm",
            "dev",
            "proc",
            "sys",
            "tmp",
            "run",
            "root",
            "var/tmp",
            "mnt",
        ] {
            fs::create_dir_all(root.join(d))?;
        }
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;

        // The host's busybox prepares modules and lists applets; the guest
        // gets its own architecture's busybox and ip.
        let busybox = host::busybox_binary()?;
        let foreign = if kernel.spec.arch.is_host() {
            None
        } else {
            Some(guest::arm64_tools()?)
        };
        let (guest_busybox, ip) = match &foreign {
            None => (busybox.clone(), host::ip_binary()?),
            Some(t) => (t.busybox.clone(), t.ip.clone()),
        };
        let mut libs = BTreeSet::new();

        // Binaries: busybox, iproute2 ip, caller's.
        let mut bins: Vec<(PathBuf, String)> = vec![
            (guest_busybox, "/bin/busybox".into()),
            (ip, GUEST_IP.into()),
        ];
        bins.extend(self.binaries.iter().cloned());
        for (i, (host_path, guest)) in bins.iter().enumerate() {
            check_guest_path(guest)?;
            if !host_path.is_file() {
                bail!(
                    "binary {} (for guest {guest}) does not exist",
                    host_path.display()
                );
            }
            let dst = under(root, guest);
            fs::create_dir_all(dst.parent().unwrap())?;
            fs::copy(host_path, &dst)
                .with_context(|| format!("copying {}", host_path.display()))?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))?;
            match (&foreign, i) {
                (None, _) => libs.extend(ldd(host_path)?),
                // busybox and ip: their libraries are the sysroot's.
                (Some(_), 0 | 1) => {}
                (Some(_), _) => guest::require_static(host_path)?,
            }
        }
        for lib in &libs {
            // Keep the host's `libfoo.so.1 -> libfoo.so.1.2.3` shape (some
            // programs, e.g. `ip -V`, read versions from the file name).
            let dst = under(root, &lib.to_string_lossy());
            let dir = dst.parent().unwrap();
            fs::create_dir_all(dir)?;
            let real = fs::canonicalize(lib)
                .with_context(|| format!("resolving library {}", lib.display()))?;
            let real_name = real.file_name().unwrap();
            if real_name != lib.file_name().unwrap() {
                let real_dst = dir.join(real_name);
                if !real_dst.exists() {
                    fs::copy(&real, &real_dst)
                        .with_context(|| format!("copying library {}", real.display()))?;
                }
                if fs::symlink_metadata(&dst).is_err() {
                    symlink(real_name, &dst)?;
                }
            } else if !dst.exists() {
                fs::copy(&real, &dst)
                    .with_context(|| format!("copying library {}", real.display()))?;
            }
        }
        let mut lib_dirs: BTreeSet<String> = libs
            .iter()
            .filter_map(|l| l.parent().map(|p| p.to_string_lossy().into_owned()))
            .collect();
        if let Some(t) = &foreign {
            lib_dirs.extend(t.install_libs(root)?);
        }

        // Busybox applets, minus those that would shadow an included binary.
        let shadowed: BTreeSet<String> = bins[1..]
            .iter()
            .filter_map(|(_, g)| {
                Path::new(g)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .collect();
        let out_list = run(Command::new(&busybox).arg("--list"))?;
        let applets: BTreeSet<String> = String::from_utf8_lossy(&out_list.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for a in &applets {
            if a == "busybox" || a.contains('/') || shadowed.contains(a) {
                continue;
            }
            let link = root.join("bin").join(a);
            if !link.exists() {
                symlink("busybox", &link)?;
            }
        }
        for l in ["sbin/ip", "bin/ip"] {
            if !root.join(l).exists() {
                symlink(GUEST_IP, root.join(l))?;
            }
        }

        // Kernel modules (decompressed on the host: busybox insmod in the guest
        // need not understand .ko.xz).
        let mods = kernel
            .module_load_order(&self.modules.iter().map(String::as_str).collect::<Vec<_>>())?;
        let mut insmods = Vec::new();
        for rel in &mods {
            let src = kernel.modules_dir.join(rel);
            let rel_plain = strip_compression(&rel.to_string_lossy());
            let guest = format!("/lib/modules/{}/{rel_plain}", kernel.release);
            let dst = under(root, &guest);
            fs::create_dir_all(dst.parent().unwrap())?;
            decompress_module(&busybox, &src, &dst)?;
            let params = MODULE_PARAMS
                .iter()
                .find(|(m, _)| Path::new(&rel_plain).file_stem().is_some_and(|s| s == *m));
            insmods.push(match params {
                Some((_, p)) => format!("{guest} {p}"),
                None => guest,
            });
        }

        // Scenario, environment, /init.
        let mut env = String::from(
            "# Generated by tests/qemu: sourced before the scenario.\n\
             # Included binaries win over busybox applets of the same name.\n",
        );
        for (_, guest) in &bins[1..] {
            let name = Path::new(guest).file_name().unwrap().to_string_lossy();
            if applets.contains(name.as_ref()) && is_shell_name(&name) {
                env.push_str(&format!("{name}() {{ {guest} \"$@\"; }}\n"));
            }
        }
        write_file(root, "/etc/qemu-vm/env.sh", env.as_bytes(), 0o644)?;
        write_file(
            root,
            "/etc/qemu-vm/scenario.sh",
            self.script.as_bytes(),
            0o755,
        )?;
        write_file(
            root,
            "/init",
            init_script(&kernel.release, &insmods, &lib_dirs).as_bytes(),
            0o755,
        )?;
        for (guest, contents, mode) in &self.files {
            check_guest_path(guest)?;
            write_file(root, guest, contents, *mode)?;
        }

        // /dev/console for the kernel to open before /init runs (needs root;
        // /init re-opens the console after mounting devtmpfs anyway).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let c = std::ffi::CString::new(
                root.join("dev/console")
                    .into_os_string()
                    .into_encoded_bytes(),
            )?;
            // SAFETY: valid NUL-terminated path.
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(5, 1)) };
        }

        write_cpio(root, out, self.gzip)?;
        Ok(())
    }
}

/// Removes the staging directory when dropped.
struct StageDir(PathBuf);
impl Drop for StageDir {
    fn drop(&mut self) {
        if std::env::var_os("QEMU_VM_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn is_shell_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn check_guest_path(p: &str) -> Result<()> {
    let path = Path::new(p);
    if !path.is_absolute()
        || path.components().any(|c| matches!(c, Component::ParentDir))
        || p == "/"
    {
        bail!("guest path {p:?} must be absolute, without `..`");
    }
    Ok(())
}

fn under(root: &Path, guest: &str) -> PathBuf {
    root.join(guest.trim_start_matches('/'))
}

fn write_file(root: &Path, guest: &str, contents: &[u8], mode: u32) -> Result<()> {
    let dst = under(root, guest);
    fs::create_dir_all(dst.parent().unwrap())?;
    fs::write(&dst, contents).with_context(|| format!("writing {}", dst.display()))?;
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn strip_compression(p: &str) -> String {
    for ext in [".xz", ".gz", ".zst"] {
        if let Some(s) = p.strip_suffix(ext) {
            return s.to_string();
        }
    }
    p.to_string()
}

fn decompress_module(busybox: &Path, src: &Path, dst: &Path) -> Result<()> {
    let name = src.to_string_lossy();
    let mut cmd = if name.ends_with(".xz") {
        let mut c = Command::new(busybox);
        c.arg("xzcat");
        c
    } else if name.ends_with(".gz") {
        let mut c = Command::new(busybox);
        c.arg("zcat");
        c
    } else if name.ends_with(".zst") {
        let mut c = Command::new(
            host::which("zstd").context("zstd needed for .ko.zst modules (package zstd)")?,
        );
        c.args(["-dc", "-q"]);
        c
    } else {
        fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
        return Ok(());
    };
    let f = File::create(dst)?;
    cmd.arg(src).stdout(f);
    run(&mut cmd)?;
    Ok(())
}

fn init_script(release: &str, insmods: &[String], lib_dirs: &BTreeSet<String>) -> String {
    let ld_path = lib_dirs.iter().cloned().collect::<Vec<_>>().join(":");
    let modules: String = insmods
        .iter()
        .map(|m| format!("    insmod {m} || {{ die \"insmod {m} failed\"; return 1; }}\n"))
        .collect();
    format!(
        r#"#!/bin/busybox sh
# PID 1 of a test VM, generated by tests/qemu (integration-tests).
/bin/busybox mount -t devtmpfs -o mode=0755 devtmpfs /dev
exec </dev/console >/dev/console 2>&1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LD_LIBRARY_PATH={ld_path}
cd /

die() {{ echo "qemu-vm init: $*"; return 1; }}
mnt() {{ # fstype target
    mkdir -p "$2" && mount -t "$1" "$1" "$2" || die "mount -t $1 $2 failed"
}}

setup() {{
    mnt proc /proc || return 1
    mnt sysfs /sys || return 1
    mnt devpts /dev/pts || return 1
    mnt tmpfs /dev/shm || return 1
    mnt tracefs /sys/kernel/tracing || return 1
    mnt debugfs /sys/kernel/debug || return 1
    mnt securityfs /sys/kernel/security || true
    mnt bpf /sys/fs/bpf || return 1
    mnt cgroup2 /sys/fs/cgroup || return 1
    ln -sf /proc/self/fd /dev/fd
    ln -sf /proc/self/fd/0 /dev/stdin
    ln -sf /proc/self/fd/1 /dev/stdout
    ln -sf /proc/self/fd/2 /dev/stderr
    ulimit -l unlimited 2>/dev/null
    hostname qemu-vm
{modules}
    {GUEST_IP} link set lo up || {{ die "ip link set lo up failed"; return 1; }}
}}

if setup; then
    echo   # SeaBIOS may leave its last line unterminated
    echo "{SCENARIO_START_MARKER}"
    /bin/busybox sh -c '. /etc/qemu-vm/env.sh && . /etc/qemu-vm/scenario.sh' </dev/null
    rc=$?
else
    rc={SETUP_FAILED_EXIT}
fi
echo
if [ "$rc" != 0 ]; then
    echo "=== BEGIN {DMESG_SECTION} ==="
    dmesg
    echo "=== END {DMESG_SECTION} ==="
fi
echo "{EXIT_MARKER_PREFIX}$rc ==="
sync
poweroff -f
sleep 2
echo o > /proc/sysrq-trigger
sleep 2
# Last resort: init exiting panics the kernel; panic=-1 reboots, qemu -no-reboot exits.
exit "$rc"
# kernel release: {release}
"#
    )
}

/// Writes `root` as a newc cpio (owned by root) to `out`, via a temp file.
fn write_cpio(root: &Path, out: &Path, gzip: bool) -> Result<()> {
    let mut entries = Vec::new();
    collect(root, Path::new(""), &mut entries)?;
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent)?;
    }
    let tmp = out.with_extension(format!("tmp-{}", host::unique_suffix()));
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--null", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning cpio")?;
    {
        let mut stdin = child.stdin.take().unwrap();
        for e in &entries {
            stdin.write_all(e.as_os_str().as_encoded_bytes())?;
            stdin.write_all(b"\0")?;
        }
    }
    let o = child.wait_with_output()?;
    if !o.status.success() {
        let _ = fs::remove_file(&tmp);
        bail!(
            "cpio failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    if gzip {
        run(Command::new("gzip")
            .args(["-1", "-n", "-f", "-S", ".gz"])
            .arg(&tmp))?;
        let gz = PathBuf::from(format!("{}.gz", tmp.display()));
        fs::rename(&gz, out)?;
    } else {
        fs::rename(&tmp, out)?;
    }
    let size = fs::metadata(out)?.len();
    say!(
        "initramfs {} ({:.1} MiB, {} entries)",
        out.display(),
        size as f64 / 1048576.0,
        entries.len()
    );
    Ok(())
}

/// Relative paths of everything under `dir`, parents before children, sorted.
fn collect(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(base.join(rel))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for n in names {
        let r = rel.join(&n);
        out.push(r.clone());
        let md = fs::symlink_metadata(base.join(&r))?;
        if md.is_dir() {
            collect(base, &r, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths() {
        assert_eq!(
            strip_compression("kernel/drivers/net/tun.ko.xz"),
            "kernel/drivers/net/tun.ko"
        );
        assert_eq!(
            strip_compression("kernel/drivers/net/tun.ko"),
            "kernel/drivers/net/tun.ko"
        );
    }
}
